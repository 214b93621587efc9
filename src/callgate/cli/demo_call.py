"""`callgate demo`: a real phone call to the demo agent, placed and spoken by a scripted caller.

Everything `callgate serve` does runs here in one process: the agent's SIP endpoint and CallHost
(embedded model unless CALLGATE_LLM_URL / OPENAI_API_KEY name another, offline speech), and a
second SIP endpoint for the caller, which dials the agent with the channel's own outbound INVITE,
speaks its lines through espeak-ng over RTP and listens to the agent's RTP to know when to talk.
The live transcript and the call's events are printed as they happen; the call ends when the
agent hangs up after its goodbye (or, failing that, when the caller gives up and hangs up).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import struct
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape

from callgate.channels.sip import SipCall, SipConfig, SipEndpoint
from callgate.records.store import StoreError, open_store
from callgate.runtime.call_host import CallHost, HostServices
from callgate.runtime.live import LiveEvent, Subscription
from callgate.runtime.models import ModelPool
from callgate.runtime.speech_wiring import speech_preparer
from callgate.speech.backends import SpeechBackends
from callgate.speech.settings import SpeechSettings
from callgate.swaig.guarded_transport import guarded_client
from callgate.swml.fetch import CallInfo
from callgate.swml.loader import LoadResult
from callgate.telephony.base import Destination
from callgate.telephony.clock import Clock, SystemClock

CALLER_NUMBER = "+15550100000"
AGENT_URI = "sip:rosa@127.0.0.1:{port}"
VOICED_RMS = 400.0  # a 20 ms frame louder than this is speech, not line noise
QUIET_SECONDS = 1.5  # the agent has finished its turn after this much silence
TURN_LIMIT = 60.0  # longest wait for the agent to answer (a slow embedded model on a busy box)
GOODBYE_LIMIT = 45.0  # after the last line, how long the caller waits for the agent's BYE


class Ear:
    """The scripted caller's ear: hears the agent's RTP and says when the agent has had its say."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.voiced_frames = 0
        self.last_voiced: float | None = None

    def feed(self, frame: bytes) -> None:
        count = len(frame) // 2
        if not count:
            return
        samples = struct.unpack(f"<{count}h", frame[: count * 2])
        if math.sqrt(sum(s * s for s in samples) / count) > VOICED_RMS:
            self.voiced_frames += 1
            self.last_voiced = self.clock.monotonic()

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def agent_has_spoken(self, call: SipCall, since_frames: int) -> bool:
        """Wait until the agent said something after `since_frames` and then fell quiet."""
        deadline = self.clock.monotonic() + TURN_LIMIT
        while not call.ended and self.clock.monotonic() < deadline:
            last = self.last_voiced
            if (
                self.voiced_frames > since_frames
                and last is not None
                and self.clock.monotonic() - last >= QUIET_SECONDS
            ):
                return True
            await self.clock.sleep(0.05)
        return False


@dataclass
class DemoResult:
    ended_reason: str | None
    agent_hung_up: bool
    call_id: str | None


def _show(console: Console, event: LiveEvent) -> None:
    data = event.data
    if event.kind == "assistant" and data.get("text"):
        console.print(f"[bold green]Rosa:[/] {escape(str(data['text']))}")
    elif event.kind == "caller-said":
        console.print(f"[dim]  (Rosa heard: {escape(str(data.get('text', '')))})[/]")
    elif event.kind in (
        "hangup",
        "caller-hangup",
        "media-timeout",
        "transfer",
        "function",
        "model-error",
        "crash",
    ):
        details = ", ".join(f"{k}={v}" for k, v in data.items())
        console.print(f"[yellow]  {escape(f'[{event.kind}]')}[/] {escape(details)}")
    elif event.kind == "call-started":
        console.print(f"[dim]  {escape('[call started]')} {escape(event.call_id)}[/]")
    elif event.kind == "call-ended":
        console.print(f"[dim]  {escape('[call ended]')} {escape(str(data.get('ended_reason')))}[/]")


async def _print_events(console: Console, events: Subscription) -> None:
    async for event in events:
        _show(console, event)


async def demo_call(
    console: Console, agent: LoadResult, lines: list[str], greeting: str | None
) -> DemoResult:
    """Serve the agent on a loopback SIP port, call it, speak `lines`, return how it ended."""
    clock = SystemClock()
    env = dict(os.environ)
    try:
        store = open_store(env.get("CALLGATE_DB") or None)
    except StoreError as exc:
        console.print(f"[yellow]warning[/] call records are off: {escape(str(exc))}")
        store = None
    models = ModelPool(env, clock, embedded_in_child=True)
    backends = SpeechBackends(env)
    async with guarded_client() as http:

        async def load(call: CallInfo) -> LoadResult:
            return agent

        services = HostServices(clock, http, models.model_for, env, store)
        host = CallHost(load, services, prepare=speech_preparer(backends, clock, env))
        agent_side = SipEndpoint(SipConfig(host="127.0.0.1", port=0), clock=clock, on_call=host.accept)
        caller_side = SipEndpoint(SipConfig(host="127.0.0.1", port=0), clock=clock)
        await agent_side.start()
        await caller_side.start()
        services.switch = agent_side.switch
        events = host.subscribe()
        printer = asyncio.create_task(_print_events(console, events))
        recorded: list[str] = []
        try:
            uri = AGENT_URI.format(port=agent_side.port)
            console.print(f"[dim]Calling {uri} from {CALLER_NUMBER} (SIP/RTP on loopback)…[/]")
            call = await caller_side.switch.dial(Destination.parse(uri), CALLER_NUMBER, 30.0)
            assert isinstance(call, SipCall)
            ear = Ear(clock)
            call.use_speech(backends.synthesizer(SpeechSettings()), ear)
            heard = 0
            for number, line in enumerate(lines):
                if not await ear.agent_has_spoken(call, heard) or call.ended:
                    break
                if number == 0 and greeting:
                    console.print(f"[bold green]Rosa:[/] {escape(greeting)}")
                console.print(f"[bold cyan]Caller:[/] {escape(line)}")
                await call.say(line)
                heard = ear.voiced_frames
            agent_hung_up = await _until_ended(call, clock)
            if not agent_hung_up:
                console.print("[yellow]The agent did not hang up; the caller does.[/]")
                await call.hangup("caller-gave-up")
            while host.busy:  # the record and its report
                await clock.sleep(0.1)
            recorded = [info.call_id for info in host.live()]
        finally:
            await host.stop()
            await caller_side.stop()
            await agent_side.stop()
            await events.aclose()
            printer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await printer
            await models.aclose()
    reason: str | None = None
    call_id: str | None = recorded[0] if recorded else None
    if store is not None:
        with contextlib.suppress(StoreError):
            latest = store.list_calls(limit=1)
            if latest:
                call_id, reason = latest[0].call_id, latest[0].ended_reason
        store.close()
    return DemoResult(reason, agent_hung_up, call_id)


async def _until_ended(call: SipCall, clock: Clock) -> bool:
    """True if the agent ended the call (its BYE) within GOODBYE_LIMIT seconds."""
    deadline = clock.monotonic() + GOODBYE_LIMIT
    while not call.ended and clock.monotonic() < deadline:
        await clock.sleep(0.05)
    return call.ended
