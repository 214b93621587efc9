"""Many calls on one event loop, each isolated, each recorded: what `callgate serve` runs.

A channel hands every new call to `CallHost.accept` (the SIP endpoint's `on_call`); the host loads
the agent for it, attaches speech, runs one `CallRunner` (the same wiring as `chat`), and after the
call commits the record and its post-call report. A failure in one call ends that call alone, with
an apology and `pipeline-error`; nothing it does reaches another call or the process. The host is
also the server's `LiveCalls` view and carries out its drain.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx

from callgate.agent.decisions import Transfer
from callgate.agent.session import GOODBYE_BROKEN
from callgate.records.async_store import AsyncStore
from callgate.records.store import Store
from callgate.runtime.call_runner import CallRunner, CallSetup, ModelFactory
from callgate.runtime.live import LiveCallInfo, LiveEvent, LiveFeed, Subscription
from callgate.runtime.logs import call_scope
from callgate.runtime.post_call import (
    LIVE_REPORT_WAIT,
    CallRecordInput,
    PostCallServices,
    deliver_in_background,
    finish_live_call,
    finish_live_record,
)
from callgate.swaig.context import CallContext
from callgate.swml.fetch import CallInfo
from callgate.swml.loader import LoadResult
from callgate.swml.models import AI
from callgate.telephony.base import Call, EndedReason, Switch
from callgate.telephony.clock import Clock, Deadline, within
from callgate.timeline import CallOutcome, Timeline, TimelineEvent

log = logging.getLogger(__name__)

AgentLoader = Callable[[CallInfo], Awaitable[LoadResult]]
"""The agent document for one call (a file loaded once, or a URL fetched with the call's details)."""

CallPreparer = Callable[[Call, AI | None], Awaitable[None]]

# The document of the call whose work is running (set in the call's task, and around an operator's
# transfer): a leg the switch dials for it (a warm transfer's supervisor, `connect`) takes its
# speech settings from it. Unset outside any call, e.g. while an inbound INVITE is being received.
calling_ai: ContextVar[AI | None] = ContextVar("calling_ai")
"""Readies a call's leg before it is answered (attaches speech for the document's settings)."""


class CallNotReady(Exception):
    """The leg could not be fully readied (e.g. speech recognition is missing). `can_speak`: it
    has a voice, so the caller is answered for the apology rather than refused."""

    def __init__(self, message: str, *, can_speak: bool) -> None:
        super().__init__(message)
        self.can_speak = can_speak


SETUP_SECONDS = 30.0  # loading the agent and attaching speech, at most
POST_CALL_GRACE = 30.0  # at shutdown, how long finished calls' post-call work may still take


@dataclass
class HostServices:
    """What every call of the process shares."""

    clock: Clock
    http: httpx.AsyncClient  # webhooks, documents, reports
    model_for: ModelFactory
    env: dict[str, str] = field(default_factory=dict)
    store: Store | AsyncStore | None = None  # used off the event loop (`records.async_store`)
    switch: Switch | None = None
    report_wait: float = LIVE_REPORT_WAIT


@dataclass
class _Call:
    call: Call
    call_id: str
    started_at: float  # epoch
    started_mono: float
    outcome: CallOutcome
    runner: CallRunner | None = None
    ai: AI | None = None  # the document's AI verb, once loaded
    stop_reason: tuple[EndedReason, str] | None = None  # ended from outside before the runner ran


class CallHost:
    """Runs the calls of one process. Implements `callgate.runtime.live.LiveCalls`."""

    def __init__(
        self, agent: AgentLoader, services: HostServices, *, prepare: CallPreparer | None = None
    ) -> None:
        self.agent = agent
        self.services = services
        self.prepare = prepare
        self.clock = services.clock
        self.draining = False
        self.feed = LiveFeed()
        self.calls_taken = 0
        self._calls: dict[str, _Call] = {}
        self._finishing: set[str] = set()
        self._changed = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ process life

    async def start(self) -> None:
        """Start the background worker: spooled records are imported, post-call jobs and reports
        earlier runs left pending are finished, and any that fall due later."""
        store = self.services.store
        if store is not None and self._worker is None:
            services = self.services
            self._worker = asyncio.create_task(
                deliver_in_background(store, services.http, self.clock, services.model_for, services.env),
                name="report-outbox",
            )

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    @property
    def active(self) -> int:
        """Calls in progress (not counting finished calls whose records are being written)."""
        return len(self._calls)

    @property
    def busy(self) -> bool:
        return bool(self._calls or self._finishing)

    async def drain(self, timeout: float) -> list[str]:
        """Take no more calls; let those in progress end by their own rules for up to `timeout`
        seconds, then end the rest (`worker-shutdown`, detail `drain-timeout`). Returns once every
        call is over and recorded (post-call work gets POST_CALL_GRACE more seconds); the ids of
        the calls that were ended by the drain."""
        self.draining = True
        log.info("draining", extra={"active_calls": self.active, "drain_timeout": timeout})
        stopped: list[str] = []
        if not await self._wait(lambda: not self._calls, timeout):
            stopped = list(self._calls)
            log.warning("drain timed out: ending %d call(s)", len(stopped), extra={"calls": stopped})
            await self.end_all(EndedReason.WORKER_SHUTDOWN, "drain-timeout")
        if not await self._wait(lambda: not self.busy, POST_CALL_GRACE):
            log.error("post-call work still running at shutdown", extra={"calls": sorted(self._finishing)})
        return stopped

    async def end_all(self, reason: EndedReason, detail: str) -> None:
        """End every call in progress now."""
        ending = [self._end(entry, reason, detail) for entry in self._each()]
        await asyncio.gather(*ending, return_exceptions=True)

    async def _wait(self, done: Callable[[], bool], seconds: float) -> bool:
        async def until() -> None:
            while not done():
                self._changed.clear()
                await self._changed.wait()

        try:
            await within(self.clock, seconds, until())
        except Deadline:
            return done()
        return True

    def _each(self) -> list[_Call]:
        return list(self._calls.values())

    # ------------------------------------------------------------ one call

    async def accept(self, call: Call) -> None:
        """Run one call to its end, then record it. Never raises for a failure of the call itself."""
        call_id = self._unique(call.call_id)
        with call_scope(call_id):
            if self.draining:
                log.info("call refused: draining")
                await _quietly(call.hangup(str(EndedReason.WORKER_SHUTDOWN)))
                return
            entry = _Call(
                call=call,
                call_id=call_id,
                started_at=self.clock.time(),
                started_mono=self.clock.monotonic(),
                outcome=CallOutcome(timeline=Timeline()),
            )
            entry.outcome.timeline.listener = lambda event: self._on_timeline(entry, event)
            self._calls[call_id] = entry
            self.calls_taken += 1
            self._changed.set()
            log.info(
                "call started",
                extra={"from": call.from_number, "to": call.to_number, "caller_name": call.caller_name},
            )
            self._publish(entry, "call-started", **self._info(entry).to_dict())
            context = CallContext(
                call_id=call_id,
                caller_id_num=call.from_number,
                caller_id_name=call.caller_name,
                to_number=call.to_number,
            )
            try:
                entry.runner = await self._runner(entry, context)
                if entry.stop_reason is not None:  # ended from outside while it was set up
                    await entry.runner.controller.hangup(*entry.stop_reason)
                else:
                    await entry.runner.run()
            except Exception as error:
                # Before the runner could contain it (document, speech) or after (its hang-up).
                await self._failed(entry, error)
            finally:
                del self._calls[call_id]
                self._finishing.add(call_id)
                self._changed.set()
            reason = entry.outcome.ended_reason
            log.info(
                "call ended",
                extra={
                    "ended_reason": reason,
                    "duration": round(self.clock.monotonic() - entry.started_mono, 3),
                },
            )
            self._publish(entry, "call-ended", ended_reason=reason)
            try:
                await self._record(entry, context)
            finally:
                self._finishing.discard(call_id)
                self._changed.set()

    def _unique(self, call_id: str) -> str:
        taken = self._calls.keys() | self._finishing
        candidate, n = call_id or "call", 1
        while candidate in taken:
            n += 1
            candidate = f"{call_id}-{n}"
        return candidate

    async def _runner(self, entry: _Call, context: CallContext) -> CallRunner:
        call, services = entry.call, self.services
        info = CallInfo(
            call_id=entry.call_id,
            from_number=call.from_number,
            to_number=call.to_number,
            caller_name=call.caller_name or None,
        )
        loaded = await within(self.clock, SETUP_SECONDS, self.agent(info))
        context.document_host = loaded.origin_host
        ai = entry.ai = loaded.document.find_ai()
        calling_ai.set(ai)  # this task's context: the runner's tasks inherit it
        if self.prepare is not None:
            await within(self.clock, SETUP_SECONDS, self.prepare(call, ai))
        setup = CallSetup(
            document=loaded.document,
            call=call,
            clock=self.clock,
            http=services.http,
            model_for=services.model_for,
            context=context,
            # A channel's legs may bring their own switch (a Twilio call dials and bridges on Twilio).
            switch=getattr(call, "switch", None) or services.switch,
            env=services.env,
            contain_crashes=True,
            recall=services.store.recall_conversation if services.store is not None else None,
        )
        return CallRunner(setup, entry.outcome, started_at=entry.started_mono)

    async def _failed(self, entry: _Call, error: BaseException) -> None:
        """The call could not be set up (or its runner failed outside its own containment)."""
        log.error("call failed: %s: %s", type(error).__name__, error, exc_info=error)
        outcome, call = entry.outcome, entry.call
        t = self.clock.monotonic() - entry.started_mono
        outcome.timeline.add(t, "crash", error=f"{type(error).__name__}: {error}")
        if outcome.ended_reason is None:
            outcome.ended_reason = str(EndedReason.PIPELINE_ERROR)
            outcome.hangup_at = t
        if not call.ended:
            # A leg that was answered, or can speak, hears the apology; one that cannot is refused.
            answered = entry.runner is not None and entry.runner.answered_at is not None
            if not answered and isinstance(error, CallNotReady) and error.can_speak:
                try:
                    await call.answer()
                    answered = True
                except Exception as failure:
                    log.warning("cannot answer for the apology: %s", failure)
            if answered:
                await _quietly(within(self.clock, 15.0, call.say(GOODBYE_BROKEN)))
                outcome.timeline.add(
                    self.clock.monotonic() - entry.started_mono, "apology", text=GOODBYE_BROKEN
                )
            await _quietly(call.hangup(str(EndedReason.PIPELINE_ERROR)))
        if entry.runner is not None:
            entry.runner.ended_at = self.clock.monotonic()

    async def _record(self, entry: _Call, context: CallContext) -> None:
        services = self.services
        if services.store is None:
            return
        post = PostCallServices(services.store, services.http, self.clock, services.model_for, services.env)
        wait = services.report_wait
        # What the caller heard, as the channel played it (a real channel keeps its own list).
        played = getattr(entry.call, "utterances", None)
        if isinstance(played, list) and played is not entry.outcome.utterances:
            entry.outcome.utterances.extend(u for u in played if u not in entry.outcome.utterances)
        try:
            if entry.runner is not None:
                record, status = await finish_live_call(entry.runner, post, wait=wait)
            else:
                data = CallRecordInput(
                    context=context,
                    outcome=entry.outcome,
                    ai=entry.ai,
                    started_at=entry.started_mono,
                    ended_at=self.clock.monotonic(),
                )
                record, status = await finish_live_record(data, post, wait=wait)
        except Exception as error:
            log.error("call not recorded: %s: %s", type(error).__name__, error, exc_info=error)
            return
        log.info("call recorded", extra={"report": status, "ended_reason": record.ended_reason})
        self._publish(entry, "call-recorded", report=status)

    # ------------------------------------------------------------ events

    def _on_timeline(self, entry: _Call, event: TimelineEvent) -> None:
        log.info(
            event.kind,
            extra={"event": event.kind, "t": round(event.t, 3), "leg": event.leg, "data": event.data},
        )
        self.feed.publish(
            LiveEvent(
                kind=event.kind,
                call_id=entry.call_id,
                at=self.clock.time(),
                t=event.t,
                leg=event.leg,
                data=dict(event.data),
            )
        )

    def _publish(self, entry: _Call, kind: str, **data: Any) -> None:
        self.feed.publish(LiveEvent(kind=kind, call_id=entry.call_id, at=self.clock.time(), data=data))

    # ------------------------------------------------------------ LiveCalls

    def _info(self, entry: _Call) -> LiveCallInfo:
        runner = entry.runner
        state = "ringing" if runner is None else str(runner.controller.state.state.value)
        legs = 1 + (len(runner.consults.open_legs()) if runner is not None else 0)
        call = entry.call
        return LiveCallInfo(
            call_id=entry.call_id,
            from_number=call.from_number,
            to_number=call.to_number,
            caller_name=call.caller_name,
            started_at=entry.started_at,
            state=state,
            legs=legs,
        )

    def live(self) -> list[LiveCallInfo]:
        return [self._info(entry) for entry in sorted(self._each(), key=lambda e: e.started_mono)]

    async def hangup(self, call_id: str) -> bool:
        entry = self._calls.get(call_id)
        if entry is None:
            return False
        with call_scope(call_id):
            log.info("hang-up requested by an operator")
            await self._end(entry, EndedReason.MANUALLY_CANCELED, "operator")
        return True

    async def transfer(self, call_id: str, destination: str) -> str:
        entry = self._calls.get(call_id)
        runner = entry.runner if entry is not None else None
        if entry is None or runner is None:
            return "not-found"
        with call_scope(call_id):
            log.info("transfer requested by an operator", extra={"destination": destination})
            calling_ai.set(entry.ai)  # the supervisor leg dialled from this request hears like the call
            # The operator speaks for the server: checked like a destination a server returned.
            result = await runner.controller.execute_transfer(
                Transfer(destination=destination, source="builtin", origin="server")
            )
            if result.ok:
                await runner.end(EndedReason.ASSISTANT_FORWARDED_CALL)
        return result.outcome + (f": {result.code}" if result.code else "")

    def subscribe(self) -> Subscription:
        return self.feed.subscribe()

    async def _end(self, entry: _Call, reason: EndedReason, detail: str) -> None:
        if entry.runner is not None:
            await entry.runner.end(reason, detail)
            return
        # Still setting up: the runner ends the call as soon as it exists.
        entry.stop_reason = (reason, detail)


async def _quietly(work: Awaitable[Any]) -> None:
    """Best effort on a leg that may be what failed."""
    try:
        await work
    except Exception as error:
        log.debug("ignored: %s: %s", type(error).__name__, error)
