"""The engine side of a scenario call: a `CallRunner` on the sim channel behind `CallUnderTest`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx

from callgate.llm.client import ChatModel, OpenAIChatModel
from callgate.records.model import CallRecord
from callgate.records.store import open_store
from callgate.runtime.call_runner import CallRunner, CallSetup
from callgate.runtime.post_call import PostCallServices, record_input, run_post_call
from callgate.swaig.context import CallContext
from callgate.swml.fetch import CallInfo as FetchCallInfo
from callgate.swml.loader import fetch_document, load_document, parse_document
from callgate.swml.models import AI, Document
from callgate.telephony.base import Call, Switch
from callgate.telephony.clock import Clock
from callgate.timeline import CallOutcome, Timeline


class ScenarioCallInfo(Protocol):
    @property
    def from_number(self) -> str: ...

    @property
    def to_number(self) -> str: ...

    @property
    def caller_name(self) -> str: ...


class ScenarioCall:
    """Implements the scenario driver's `CallUnderTest` protocol."""

    def __init__(
        self,
        *,
        agent_source: str | dict[str, Any],
        base_dir: Path,
        caller: Call,
        switch: Switch,
        clock: Clock,
        timeline: Timeline,
        model_base_url: Callable[[str], str],
        http: httpx.AsyncClient,
        call: ScenarioCallInfo,
        guard_exempt: Callable[[str], bool] | None = None,
    ) -> None:
        self._agent_source = agent_source
        self._base_dir = base_dir
        self._caller = caller
        self._switch = switch
        self._clock = clock
        self._model_base_url = model_base_url
        self._http = http
        self._call = call
        self._guard_exempt = guard_exempt
        self.outcome = CallOutcome(timeline=timeline)
        self.runner: CallRunner | None = None
        self._task: asyncio.Task[CallOutcome] | None = None
        self._ready = asyncio.Event()
        self._models: list[OpenAIChatModel] = []
        self.record: CallRecord | None = None

    async def _document(self, context: CallContext) -> Document:
        source = self._agent_source
        if isinstance(source, dict):
            return parse_document(source, source="<inline agent>").document
        if source.startswith(("http://", "https://")):
            info = FetchCallInfo(
                call_id=context.call_id,
                from_number=self._call.from_number,
                to_number=self._call.to_number,
                caller_name=self._call.caller_name,
            )
            loaded = await fetch_document(source, call=info, client=self._http)
            # Webhooks back to the host that served the document are always allowed.
            context.document_host = loaded.origin_host
            return loaded.document
        path = Path(source)
        if not path.is_absolute():
            path = self._base_dir / path
        return load_document(path).document

    def _model_for(self, role: str, ai: AI) -> ChatModel:
        model = OpenAIChatModel(self._model_base_url(role), "scenario-key", clock=self._clock)
        self._models.append(model)
        return model

    async def start(self) -> None:
        context = CallContext(
            caller_id_num=self._call.from_number,
            caller_id_name=self._call.caller_name,
            to_number=self._call.to_number,
        )
        document = await self._document(context)
        setup = CallSetup(
            document=document,
            call=self._caller,
            clock=self._clock,
            http=self._http,
            model_for=self._model_for,
            context=context,
            switch=self._switch,
            guard_exempt=self._guard_exempt,
        )
        self.runner = CallRunner(setup, self.outcome, started_at=getattr(self._caller, "started_at", None))
        self._task = asyncio.create_task(self.runner.run(), name="scenario-call")
        self._ready.set()
        # Let the call get going (answer, the agent's first request) before the first turn.
        await asyncio.sleep(0)

    async def agent_idle(self) -> None:
        await self._ready.wait()
        assert self.runner is not None
        if self.caller_on_hold:
            return
        await self.runner.agent_idle()

    async def leg_agent_idle(self, leg: Call) -> None:
        """The consult agent on a dialled leg has finished responding (the leg driver's turn-taking)."""
        await self._ready.wait()
        assert self.runner is not None
        await self.runner.consults.wait_idle(leg.call_id)

    async def wait_ended(self) -> None:
        """The engine is done with the call (the caller's leg may live on, bridged elsewhere)."""
        await self._ready.wait()
        assert self.runner is not None
        await self.runner.ended.wait()

    @property
    def ended(self) -> bool:
        return self.runner is not None and self.runner.ended.is_set()

    @property
    def caller_on_hold(self) -> bool:
        return self.runner is not None and self.runner.caller_on_hold

    async def finish(self) -> CallOutcome:
        try:
            if self._task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            if self.runner is not None:
                await self._post_call(self.runner)
        finally:
            for model in self._models:
                await model.aclose()
        return self.outcome

    async def _post_call(self, runner: CallRunner) -> None:
        """DESIGN §6: post_prompt and report delivery (with its retries, on the virtual clock) are
        done before the scenario reports. The store is a throwaway in-memory one."""
        with open_store(":memory:") as store:
            services = PostCallServices(store, self._http, self._clock, self._model_for)
            self.record = await run_post_call(record_input(runner), services)


def build_call_under_test(
    *, guard_exempt: Callable[[str], bool] | None = None, **kwargs: Any
) -> ScenarioCall:
    """The scenario runner's engine hook (`callgate.scenario.runner.build_call_under_test`)."""
    return ScenarioCall(guard_exempt=guard_exempt, **kwargs)
