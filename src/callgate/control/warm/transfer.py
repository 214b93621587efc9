"""Warm transfer (seed 001): hold the caller, brief a supervisor, then bridge them — or come back.

One `WarmTransfer` serves a call; `CallController.execute` hands it every `mode: warm` Transfer once
the destination policy has let it through. The steps, each recorded in the timeline (`warm-*`):

1. speak `msg`, hold the caller (no audio either way, no recognition, no tools), loop hold music;
2. summarise the history (in parallel with the dial) and dial the supervisor with a ring timeout;
3. a consult agent on the supervisor's leg briefs them until connect, decline, redirect, hang-up or
   the consult timeout;
4. connect: music stops, optional introduction, bridge; the call ends for callgate with
   `assistant-forwarded-call`. Anything else: the caller comes off hold and the result (busy,
   no-answer, `declined: <reason>`, supervisor-hung-up, timeout) goes back to the caller's agent.
   A redirect dials the new destination (the policy applies again).

The caller hanging up cancels this coroutine (the call runner cancels the agent); the cleanup then
cancels the dial or hangs up the supervisor's leg, so nobody is left alone in a bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from callgate.agent.decisions import Transfer, TransferResult
from callgate.control.call_state import CallState
from callgate.control.controller import CallController, failure_code
from callgate.control.warm.consult import ConsultFactory, ConsultVerdict
from callgate.control.warm.states import CallerMachine, CallerState, SupervisorMachine, SupervisorState
from callgate.control.warm.summary import Summary
from callgate.swaig.urlguard import Guard
from callgate.swml.models import TransferConfig
from callgate.telephony.base import (
    Call,
    CallEnded,
    Destination,
    DialFailed,
    EndedReason,
    Playback,
    SpeechRefused,
)
from callgate.telephony.clock import Deadline, within
from callgate.timeline import TransferRecord

log = logging.getLogger(__name__)

DEFAULT_RING_TIMEOUT = 30.0
DEFAULT_CONSULT_TIMEOUT = 120.0
MAX_ATTEMPTS = 3  # the first destination plus two redirects: a loop of redirects ends here

ConfigFor = Callable[[Transfer], TransferConfig | None]
Summarizer = Callable[[TransferConfig], Awaitable[Summary]]
DestinationCheck = Callable[[str], TransferResult | None]


@dataclass(frozen=True)
class _Attempt:
    """How one supervisor attempt ended."""

    outcome: Literal["completed", "failed", "redirect"]
    code: str = ""
    destination: str = ""


class WarmTransfer:
    """Runs warm transfers for one call; `await warm(decision)` returns the TransferResult."""

    def __init__(
        self,
        controller: CallController,
        *,
        config_for: ConfigFor,
        summarize: Summarizer,
        consult: ConsultFactory,
        check_destination: DestinationCheck | None = None,
        on_hold: Callable[[], None] | None = None,
        media_guard: Guard | None = None,
    ) -> None:
        self.controller = controller
        self._media_guard = media_guard  # the private-address guard for hold music by URL
        self._config_for = config_for
        self._summarize = summarize
        self._consult = consult
        self._check = check_destination
        self._on_hold = on_hold
        self.caller = CallerMachine()
        self.supervisor = SupervisorMachine()
        self._leg: Call | None = None
        self._music: Playback | None = None
        self._settled = False  # the current attempt's outcome is recorded

    @property
    def call(self) -> Call:
        return self.controller.call

    def note(self, kind: str, **data: Any) -> None:
        self.controller.note(kind, **data)

    # ------------------------------------------------------------ the transfer

    async def __call__(self, decision: Transfer) -> TransferResult:
        if not self.controller.live:
            return TransferResult("cancelled", "call already ending")
        if self.controller.switch is None:
            return self._failed_early(decision.destination, "unreachable")
        config = self._config_for(decision) or TransferConfig(mode="warm")
        self.caller = CallerMachine()
        self._settled = False
        destination = decision.destination
        self.note("warm-start", to=destination)
        summary: asyncio.Task[Summary] | None = None
        try:
            if decision.msg:
                await self.call.say(decision.msg)
            await self._hold(config)
            self.note("warm-summarizing")
            summary = asyncio.ensure_future(self._summarize(config))
            for attempt_no in range(MAX_ATTEMPTS):
                attempt = await self._attempt(destination, decision, config, summary)
                if attempt.outcome == "completed":
                    return TransferResult("completed")
                if attempt.outcome == "failed":
                    return await self._come_back(destination, attempt.code, decision)
                new = attempt.destination
                refused = self._check(new) if self._check is not None else None
                if refused is not None:
                    self.note("warm-redirect-refused", to=new, code=refused.code)
                    self._record(new, "refused", refused.code)
                    await self._unhold()
                    if decision.err_msg:  # as when the supervisor is not reached
                        await self.call.say(decision.err_msg)
                    return refused
                if attempt_no == MAX_ATTEMPTS - 1:
                    return await self._come_back(new, "too many redirects", decision)
                self.note("warm-redirect", to=new, previous=destination)
                # What is dialled is exactly the form the policy checked.
                destination = self.controller.policy.dial_form(new)
            raise AssertionError("unreachable")  # pragma: no cover - the loop always returns
        except (asyncio.CancelledError, CallEnded):
            await self._cancelled(destination)
            raise
        finally:
            if summary is not None and not summary.done():
                summary.cancel()

    async def _attempt(
        self, destination: str, decision: Transfer, config: TransferConfig, summary: asyncio.Task[Summary]
    ) -> _Attempt:
        self.supervisor = SupervisorMachine()
        self.supervisor.to(SupervisorState.DIALING)
        ring = config.ring_timeout if config.ring_timeout is not None else DEFAULT_RING_TIMEOUT
        caller_id = decision.caller_id or self.call.from_number
        target = Destination.parse(destination)
        target = Destination(
            kind=target.kind,
            value=target.value,
            caller_id=caller_id,
            extension=decision.extension,
            headers=dict(decision.headers),
        )
        self.note("warm-dial", to=destination, caller_id=caller_id, ring_timeout=ring)
        assert self.controller.switch is not None
        try:
            leg = await self.controller.switch.dial(target, caller_id, ring)
        except DialFailed as failure:
            self.supervisor.to(SupervisorState.FAILED)
            return _Attempt("failed", failure_code(failure))
        self._leg = leg
        self.note("warm-answered", to=destination)
        self.supervisor.to(SupervisorState.SUMMARIZING)
        brief = await summary
        self.note(
            "warm-summary",
            source=brief.source,
            text=brief.text,
            **({"why": brief.reason} if brief.reason else {}),
        )
        consult_timeout = (
            config.consult_timeout if config.consult_timeout is not None else DEFAULT_CONSULT_TIMEOUT
        )
        self.note("warm-consult", to=destination, timeout=consult_timeout)
        try:
            verdict = await within(
                self.controller.clock, consult_timeout, self._consult(leg, brief, config).run()
            )
        except Deadline:
            verdict = None
        if verdict is not None and verdict.kind == "connect":
            return await self._connect(destination, leg, config)
        code, redirect = self._verdict_code(verdict)
        self.note("warm-consult-ended", to=destination, code=code)
        await self._drop_supervisor(leg, code)
        self.supervisor.to(SupervisorState.FAILED)
        if redirect:
            self._record(destination, "failed", f"redirected: {redirect}")
            return _Attempt("redirect", destination=redirect)
        return _Attempt("failed", code)

    @staticmethod
    def _verdict_code(verdict: ConsultVerdict | None) -> tuple[str, str]:
        """(failure code, redirect destination) of a briefing that did not connect."""
        if verdict is None:
            return "timeout", ""
        if verdict.kind == "decline":
            return f"declined: {verdict.reason or 'no reason given'}", ""
        if verdict.kind == "redirect":
            return f"redirected: {verdict.destination}", verdict.destination
        return "supervisor-hung-up", ""

    async def _connect(self, destination: str, leg: Call, config: TransferConfig) -> _Attempt:
        await self._stop_music()
        assert self.controller.switch is not None
        try:
            if config.introduction:
                await self._introduce(leg, config.introduction)
            await self.controller.switch.bridge(self.call, leg)
        except CallEnded:
            if self.call.ended:
                raise
            # The supervisor left between saying yes and the bridge.
            self.supervisor.to(SupervisorState.FAILED)
            return _Attempt("failed", "supervisor-hung-up")
        self.supervisor.to(SupervisorState.MERGED)
        self.caller.to(CallerState.INACTIVE)
        self._leg = None
        self.note("warm-bridged", to=destination)
        self._record(destination, "completed")
        controller = self.controller
        self._controller_to(CallState.ENDING)
        # The controller's own bookkeeping for a call that ends here (ended reason, hang-up time).
        controller._mark_ended(EndedReason.ASSISTANT_FORWARDED_CALL, destination)
        self._controller_to(CallState.ENDED)
        return _Attempt("completed")

    async def _introduce(self, leg: Call, text: str) -> None:
        """The document's introduction, spoken to both parties before they are joined."""
        # Off hold to hear it, but still being transferred: no turns for the caller's agent.
        await self._unhold(CallState.TRANSFERRING)
        self.note("warm-introduction", text=text)
        results = await asyncio.gather(self.call.say(text), leg.say(text), return_exceptions=True)
        for result in results:
            if isinstance(result, CallEnded):
                raise result
            if isinstance(result, BaseException) and not isinstance(result, SpeechRefused):
                raise result

    # ------------------------------------------------------------ hold and coming back

    async def _hold(self, config: TransferConfig) -> None:
        self.caller.to(CallerState.ESCALATED)
        self._controller_to(CallState.HELD)
        await self.call.hold()
        self.note("warm-hold")
        if self._on_hold is not None:
            self._on_hold()
        if config.hold_music:
            self._music = await self.call.play(config.hold_music, loop=True, guard=self._media_guard)
            self.note("warm-music", source=config.hold_music)

    async def _stop_music(self) -> None:
        music, self._music = self._music, None
        if music is not None:
            await music.stop()
            self.note("warm-music-stopped")

    async def _unhold(self, state: CallState = CallState.ACTIVE) -> None:
        await self._stop_music()
        if state is CallState.ACTIVE and self.caller.state is CallerState.ESCALATED:
            self.caller.to(CallerState.ACTIVE)
        await self.call.unhold()
        self._controller_to(state)
        self.note("warm-unhold")

    async def _come_back(self, destination: str, code: str, decision: Transfer) -> TransferResult:
        """The supervisor was not reached or did not take the call: back to the caller's agent."""
        self.note("warm-failed", to=destination, code=code)
        self._record(destination, "failed", code)
        await self._unhold()
        if decision.err_msg:
            await self.call.say(decision.err_msg)
        return TransferResult("failed", code)

    def _failed_early(self, destination: str, code: str) -> TransferResult:
        self.note("warm-failed", to=destination, code=code)
        self._record(destination, "failed", code)
        return TransferResult("failed", code)

    async def _cancelled(self, destination: str) -> None:
        """The caller left: stop ringing or hang up the supervisor, and record the cancellation."""
        leg, self._leg = self._leg, None
        if leg is not None:
            with contextlib.suppress(Exception):
                await leg.hangup("caller-hung-up")
        with contextlib.suppress(Exception):
            await self._stop_music()
        if self.supervisor.can(SupervisorState.FAILED):
            self.supervisor.to(SupervisorState.FAILED)
        if self.caller.can(CallerState.INACTIVE):
            self.caller.to(CallerState.INACTIVE)
        if not self._settled:
            why = "the caller hung up" if self.call.ended else "the call is ending"
            self.note("warm-cancelled", to=destination, why=why)
            self._record(destination, "cancelled", why)

    async def _drop_supervisor(self, leg: Call, code: str) -> None:
        self._leg = None
        if not leg.ended:
            await leg.hangup(code)

    # ------------------------------------------------------------ bookkeeping

    def _record(self, destination: str, result: str, reason: str | None = None) -> None:
        self.controller.outcome.transfers.append(
            TransferRecord(to=destination, mode="warm", result=result, reason=reason)
        )
        # A redirect records its first attempt and goes on; any other record ends the transfer.
        self._settled = not (reason or "").startswith("redirected:")

    def _controller_to(self, target: CallState) -> None:
        state = self.controller.state
        if state.state == target:
            return
        if not state.can(target):
            # Something else moved the call meanwhile (a hang-up, a timer closing it): the move is
            # not made, but never silently — it is a bug or a race worth seeing.
            error = f"call cannot go from {state.state} to {target}"
            log.warning("warm transfer: %s", error)
            self.note("warm-error", error=error)
            return
        state.to(target)
