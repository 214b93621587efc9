"""A small stand-in for the engine's `CallUnderTest`, on the real sim caller leg.

It is a test double of the lead's engine (callgate.runtime.scenario_call), just enough to check the
driver's turn semantics and the runner's wiring: it greets, answers what it hears, hangs up on "bye",
puts the caller on hold on "transfer", reads DTMF, and can end the call on silence. With a
`model_base_url` it takes its words from the scripted model server over HTTP, and with `webhook`
it calls an outbound URL through the scenario's HTTP client when it hears "weather".
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from callgate.channels.sim import SimCall
from callgate.telephony.base import CallEnded, CallerSpeech, CallEvent, Dtmf, RemoteHangup
from callgate.telephony.clock import Clock
from callgate.timeline import CallOutcome, FunctionCallRecord, Timeline


class FakeEngine:
    def __init__(
        self,
        caller: SimCall,
        clock: Clock,
        timeline: Timeline,
        *,
        greeting: str = "Hello, how can I help?",
        silence: float | None = None,
        hold_for: float = 10.0,
        model_base_url: Callable[[str], str] | None = None,
        http: httpx.AsyncClient | None = None,
        webhook: str | None = None,
        fail_idle: bool = False,
        stuck_finish: bool = False,
    ) -> None:
        self.leg = caller
        self.clock = clock
        self.timeline = timeline
        self.greeting = greeting
        self.silence = silence
        self.hold_for = hold_for
        self.model_base_url = model_base_url
        self.http = http
        self.webhook = webhook
        self.fail_idle = fail_idle
        self.stuck_finish = stuck_finish
        self.on_hold = False
        self.functions: list[FunctionCallRecord] = []
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ CallUnderTest

    async def start(self) -> None:
        await self.leg.answer()
        self._task = asyncio.create_task(self._run())

    async def agent_idle(self) -> None:
        if self.fail_idle:
            raise RuntimeError("engine exploded")
        if self.on_hold or self.leg.ended:
            return
        await self._idle.wait()

    @property
    def ended(self) -> bool:
        return self.leg.ended

    @property
    def caller_on_hold(self) -> bool:
        return self.on_hold

    async def finish(self) -> CallOutcome:
        if self._task is not None:
            await self._task
        if self.stuck_finish:
            await asyncio.Event().wait()  # post-call work that never completes
        return CallOutcome(
            ended_reason=self.leg.ended_reason,
            hangup_at=self.leg.hangup_at,
            utterances=list(self.leg.utterances),
            functions=self.functions,
            timeline=self.timeline,
        )

    # ------------------------------------------------------------ the tiny agent

    async def _run(self) -> None:
        try:
            await self.leg.say(await self._words(self.greeting))
            events = aiter(self.leg.events())
            while True:
                self._idle.set()
                try:
                    event = await self._next(events)
                except TimeoutError:
                    await self.leg.say("Goodbye for now.")
                    await self.leg.hangup("silence-timed-out")
                    return
                except StopAsyncIteration:
                    return
                self._idle.clear()
                if await self._handle(event):
                    return
        except CallEnded:
            pass
        finally:
            self._idle.set()

    async def _next(self, events: AsyncIterator[CallEvent]) -> CallEvent:
        if self.silence is None:
            return await anext(events)
        return await asyncio.wait_for(anext(events), self.silence)

    async def _handle(self, event: CallEvent) -> bool:
        """Respond to one event; True once the call is over."""
        if isinstance(event, RemoteHangup):
            return True
        if isinstance(event, Dtmf):
            await self.leg.say(f"You pressed {event.digits}.")
        elif isinstance(event, CallerSpeech):
            text = event.text
            if "bye" in text.lower():
                await self.leg.say(await self._words("Goodbye!"))
                await self.leg.hangup("assistant-ended-call")
                return True
            if "transfer" in text.lower():
                await self._hold()
            elif "weather" in text.lower() and self.webhook and self.http is not None:
                response = await self.http.post(self.webhook, json={"function": "get_weather", "q": text})
                self.functions.append(FunctionCallRecord("get_weather", {"q": text}, response.text))
                await self.leg.say(str(response.json().get("response", "no answer")))
            else:
                await self.leg.say(await self._words(f"You said: {text}."))
        return False

    async def _hold(self) -> None:
        await self.leg.say("Transferring you.")
        await self.leg.hold()
        self.on_hold = True
        self._idle.set()  # the driver must not wait for a transfer to finish
        await self.clock.sleep(self.hold_for)
        await self.leg.unhold()
        self.on_hold = False
        self._idle.clear()
        await self.leg.say("Nobody answered, sorry.")

    async def _words(self, default: str) -> str:
        """The next reply: from the scripted model server when wired to one, else `default`."""
        if self.model_base_url is None:
            return default
        url = self.model_base_url("agent") + "/chat/completions"
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": default}]}
        text = ""
        async with httpx.AsyncClient(timeout=10) as client, client.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                return "Sorry, something went wrong."
            async for line in response.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    chunk: dict[str, Any] = json.loads(line[6:])
                    for choice in chunk["choices"]:
                        text += choice["delta"].get("content") or ""
        return text


class FakeFactory:
    """A `build_call_under_test` replacement building FakeEngines for the runner."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.engines: list[FakeEngine] = []
        self.seen: list[dict[str, Any]] = []

    def __call__(
        self,
        *,
        caller: SimCall,
        clock: Clock,
        timeline: Timeline,
        model_base_url: Callable[[str], str],
        http: httpx.AsyncClient,
        **others: Any,
    ) -> FakeEngine:
        self.seen.append(others)
        engine = FakeEngine(caller, clock, timeline, model_base_url=model_base_url, http=http, **self.options)
        self.engines.append(engine)
        return engine
