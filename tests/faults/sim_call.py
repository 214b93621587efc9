"""One call of the real engine (`CallRunner`) on the sim channel and virtual time, its agent's model
at a loopback URL — for the fault tests that need to act inside a call (a media timeout, a crash,
caller speech at a chosen moment)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from callgate.channels.sim import SimWorld
from callgate.llm.client import ChatModel, OpenAIChatModel
from callgate.runtime.call_runner import CallRunner, CallSetup
from callgate.swaig.context import CallContext
from callgate.swml.loader import parse_document
from callgate.swml.models import AI
from callgate.telephony.clock import VirtualClock, within
from callgate.timeline import CallOutcome

LONG = 3600.0  # virtual seconds: a wait that ends long before this, or the test fails (no hang)


def agent(params: dict[str, Any] | None = None, **ai: Any) -> dict[str, Any]:
    """An agent document with one `ai` verb."""
    body: dict[str, Any] = {"prompt": {"text": "You are Frank."}, "params": dict(params or {}), **ai}
    return {"version": "1.0.0", "sections": {"main": [{"ai": body}]}}


@dataclass
class SimCallRun:
    world: SimWorld
    runner: CallRunner
    task: asyncio.Task[CallOutcome]
    clock: VirtualClock

    async def idle(self) -> None:
        await within(self.clock, LONG, self.runner.agent_idle())

    async def ended(self) -> CallOutcome:
        return await within(self.clock, LONG, self.task)

    def said(self) -> list[str]:
        """What the caller heard, utterance by utterance (cut ones: the words played)."""
        return [u.text for u in self.world.utterances if u.leg == "caller"]

    def kinds(self) -> list[str]:
        return [event.kind for event in self.runner.outcome.timeline.events]

    def events(self, kind: str) -> list[Any]:
        return self.runner.outcome.timeline.of_kind(kind)


@asynccontextmanager
async def sim_call(
    clock: VirtualClock,
    document: dict[str, Any],
    model_url: str | Callable[[str], str],
    *,
    legs: dict[str, Any] | None = None,
    contain_crashes: bool = True,
) -> AsyncIterator[SimCallRun]:
    """Start the call (the agent opens it); the caller hangs up on leaving if it is still up.
    `model_url`: one URL for every role, or the URL for a role (`agent`, `summary`, `consult`)."""
    world = SimWorld(clock, legs=legs or {}, caller_name="Ann")
    models: list[OpenAIChatModel] = []

    def model_for(role: str, ai: AI) -> ChatModel:
        url = model_url if isinstance(model_url, str) else model_url(role)
        models.append(OpenAIChatModel(url, "key", clock=clock, retries=0))
        return models[-1]

    async with httpx.AsyncClient() as http:
        setup = CallSetup(
            parse_document(document, source="<test>").document,
            world.caller,
            clock,
            http,
            model_for,
            CallContext(caller_id_num="+15551230000", caller_id_name="Ann", to_number="+15559870000"),
            switch=world.switch,
            contain_crashes=contain_crashes,
        )
        runner = CallRunner(setup)
        task = asyncio.create_task(runner.run())
        try:
            yield SimCallRun(world, runner, task, clock)
        finally:
            await world.caller.remote_hangup()
            await asyncio.gather(within(clock, LONG, task), return_exceptions=True)
            for model in models:
                await model.aclose()
