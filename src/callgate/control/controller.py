"""Carries out the agent's decisions on the caller's leg: hang-up (once) and transfers.

Hang-up is terminal and idempotent: however many times the model asks, the call ends once, with the
first reason. Every operation is awaited to completion, so a goodbye queued before a hang-up has
finished playing when the BYE goes out.

A transfer runs in this order (DESIGN §3, §4):
1. a dynamic transfer (`Transfer.dynamic`, Vapi) first asks the destination server where to go;
   its failure (error answer, timeout, garbage, server down) is the transfer's failure;
2. the destination policy and the caller-ID rule — before anything is said: a refusal dials
   nothing, speaks only `err_msg` for an IMS command (default DEFAULT_ERR_MSG) and is recorded as
   `refused`;
3. dispatch: `assistant:<name>` → the hand-off hook the runtime sets (`_handoff`); mode "warm" →
   the warm-transfer hook (`_warm`, set by the warm transfer package); otherwise the blind transfer
   (speak `msg` in full, `Call.transfer()`, on failure speak `err_msg` and go on).

Failure codes are DESIGN §3's: busy, no-answer, rejected, timeout, `destination-error: <text>`;
`cancelled` when the caller left first. Only `Call.transfer(Destination)` is used, so the same code
drives SIP (REFER), Twilio and the sim channel.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from callgate.agent.decisions import (
    DEFAULT_ERR_MSG,
    Decision,
    Hangup,
    HoldCaller,
    Transfer,
    TransferResult,
)
from callgate.control.call_state import CallState, CallStateMachine
from callgate.control.destinations import CallFacts, DestinationClient
from callgate.control.policy import DestinationPolicy, Origin
from callgate.swaig.fetch import safe_url
from callgate.telephony.base import Call, CallEnded, Destination, DialFailed, EndedReason, Switch
from callgate.telephony.clock import Clock
from callgate.timeline import CallOutcome, TransferRecord

log = logging.getLogger(__name__)

TransferHook = Callable[[Transfer], Awaitable[TransferResult]]

WARM_UNAVAILABLE = "warm transfer unavailable"


def failure_code(failure: DialFailed) -> str:
    """A dial failure as a DESIGN §3 code (`unreachable` has no code of its own there)."""
    if failure.code == "unreachable":
        return "destination-error: unreachable" + (f" ({failure.detail})" if failure.detail else "")
    return failure.code


class CallController:
    """Owns the caller leg's state; the only place that hangs up or transfers it."""

    def __init__(
        self,
        call: Call,
        switch: Switch | None,
        clock: Clock,
        outcome: CallOutcome,
        started_at: float,
        *,
        policy: DestinationPolicy | None = None,
        destinations: DestinationClient | None = None,
    ) -> None:
        self.call = call
        self.switch = switch
        self.clock = clock
        self.outcome = outcome
        self.state = CallStateMachine()
        self._started_at = started_at
        # No policy given: only the caller's own leg is known, so only server answers may pass.
        self.policy = policy or DestinationPolicy(caller_number=call.from_number)
        self.destinations = destinations
        # Set by the warm transfer package (issue 4 part B): carries out a mode "warm" transfer.
        self._warm: TransferHook | None = None
        # Set by the runtime: hands the call to another agent document (`assistant:<name>`).
        self._handoff: TransferHook | None = None
        # Set by the runtime: told when the caller leg starts transferring (drivers stop waiting
        # for the agent then: the caller may hang up while the destination rings).
        # Called when the caller goes on hold or into a transfer (drivers stop waiting for the agent).
        self.on_transferring: Callable[[], None] | None = None
        # A timer decided the call ends (begin_closing): the reason the hang-up will carry.
        self._closing: tuple[EndedReason, str] | None = None
        self._hanging_up = False

    # ------------------------------------------------------------ helpers

    def now(self) -> float:
        return self.clock.monotonic() - self._started_at

    def note(self, kind: str, **data: Any) -> None:
        self.outcome.timeline.add(self.now(), kind, **data)

    @property
    def live(self) -> bool:
        return self.state.live

    def record(self, to: str, mode: str, result: str, reason: str | None = None) -> None:
        self.outcome.transfers.append(TransferRecord(to=to, mode=mode, result=result, reason=reason or None))
        # One event per transfer with its outcome, whatever path it took (metrics count these).
        self.note(
            "transfer-outcome", to=to, mode=mode, result=result, **({"reason": reason} if reason else {})
        )

    # ------------------------------------------------------------ lifecycle

    async def answer(self) -> None:
        await self.call.answer()
        self.state.to(CallState.ACTIVE)

    async def execute(self, decision: Decision) -> TransferResult | None:
        if isinstance(decision, Hangup):
            await self.hangup(decision.reason, decision.detail)
            return None
        if isinstance(decision, HoldCaller):
            await self.hold_for(decision.seconds)
            return None
        return await self.execute_transfer(decision)

    def _held(self) -> bool:
        return self.state.state is CallState.HELD

    async def hold_for(self, seconds: float) -> None:
        """SWAIG `hold`: the caller hears nothing and is not heard for `seconds`, then comes back."""
        if self.state.state != CallState.ACTIVE or seconds <= 0:
            self.note("hold-skipped", state=str(self.state.state), seconds=seconds)
            return
        self.state.to(CallState.HELD)
        self.note("hold", seconds=seconds)
        if self.on_transferring is not None:
            self.on_transferring()
        try:
            await self.call.hold()
            await self.clock.sleep(seconds)
        except CallEnded:
            self.remote_hangup()
            return
        # Anything may have happened during the hold (a hang-up, a transfer): only a held call comes back.
        if self._held() and not self.call.ended:
            await self.call.unhold()
            self.state.to(CallState.ACTIVE)
            self.note("unhold")

    def begin_closing(self, reason: EndedReason, detail: str = "") -> bool:
        """A timer decided the call ends, but a goodbye is still to play: from now on the call is
        `ENDING` (no new turns, no model requests); `hangup()` completes it with this reason.
        False if the call is already ending or over."""
        if not self.live:
            return False
        self.state.to(CallState.ENDING)
        self._closing = (reason, detail)
        self.note("closing", reason=str(reason), **({"detail": detail} if detail else {}))
        return True

    @property
    def closing(self) -> bool:
        """Decided to end (begin_closing) and not hung up yet."""
        return self._closing is not None and not self._hanging_up and self.state.state is CallState.ENDING

    async def hangup(self, reason: EndedReason, detail: str = "") -> None:
        """End the call once; later requests (and their reasons) are ignored but logged."""
        if (
            self._hanging_up
            or self.state.state is CallState.ENDED
            or (self.state.state is CallState.ENDING and self._closing is None)
        ):
            self.note("hangup-ignored", reason=str(reason), why="call already ending")
            return
        if self._closing is not None:
            reason, detail = self._closing  # the decision to close named the reason first
        self._hanging_up = True
        self.state.to(CallState.ENDING)
        self._mark_ended(reason, detail)
        try:
            await self.call.hangup(str(reason))
        finally:
            self.state.to(CallState.ENDED)

    async def take_back(self) -> None:
        """The caller off hold and out of an unfinished transfer (their turn was stopped, e.g. by
        the hard stop), so they hear what is said next."""
        if self.state.state not in (CallState.HELD, CallState.TRANSFERRING) or self.call.ended:
            return
        try:
            await self.call.unhold()
        except CallEnded:
            self.remote_hangup()
            return
        self.state.to(CallState.ACTIVE)
        self.note("unhold", why="taken back")

    def remote_hangup(self, cause: str = "hangup") -> None:
        """The caller left: the call is over whatever was in flight."""
        if self.state.state == CallState.ENDED:
            return
        if self.outcome.ended_reason is None:
            if self._closing is not None:  # the caller left during the goodbye: the decision stands
                self._mark_ended(*self._closing)
            else:
                self._mark_ended(EndedReason.CUSTOMER_ENDED_CALL, cause)
        self.state.to(CallState.ENDED)

    def _mark_ended(self, reason: EndedReason, detail: str) -> None:
        if self.outcome.ended_reason is None:
            self.outcome.ended_reason = str(reason)
            self.outcome.hangup_at = self.now()
        self.note("hangup", reason=str(reason), **({"detail": detail} if detail else {}))

    # ------------------------------------------------------------ the policy (also for warm redirects)

    def check_destination(
        self,
        destination: str,
        origin: Origin,
        caller_id: str | None = None,
        server_values: frozenset[str] | None = None,
        extension: str | None = None,
    ) -> TransferResult | None:
        """None if a transfer to `destination` (chosen by `origin`) may go ahead, else the refusal."""
        code = self.policy.check(destination, origin, caller_id, server_values, extension)
        return None if code is None else TransferResult("refused", code)

    # ------------------------------------------------------------ transfer

    async def execute_transfer(self, decision: Transfer) -> TransferResult:
        """Resolve (dynamic), check the policy, then dispatch by destination kind and mode."""
        if not self.live:
            return TransferResult("cancelled", "call already ending")
        self.note(
            "transfer-requested",
            to=decision.destination or "(dynamic)",
            mode=decision.mode,
            source=decision.source,
            origin=decision.origin,
        )
        if decision.dynamic is not None and not decision.destination:
            resolved = await self._resolve(decision)
            if isinstance(resolved, TransferResult):
                return resolved
            decision = resolved
        refusal = self.check_destination(
            decision.destination,
            decision.origin,
            decision.caller_id,
            decision.server_values,
            decision.extension,
        )
        if refusal is not None:
            return await self._refuse(decision, refusal)
        # What goes out is exactly the form the policy checked.
        decision = dataclasses.replace(
            decision,
            destination=self.policy.dial_form(decision.destination),
            caller_id=self.policy.dial_form(decision.caller_id) if decision.caller_id else None,
        )
        if decision.destination.startswith("assistant:"):
            return await self._hand_off(decision)
        if decision.mode == "warm":
            # ---- seam with the warm transfer package (issue 4 part B) ----
            if self._warm is not None:
                return await self._warm(decision)
            self.note("transfer-failed", to=decision.destination, code=WARM_UNAVAILABLE)
            self.record(decision.destination, "warm", "failed", WARM_UNAVAILABLE)
            return TransferResult("failed", WARM_UNAVAILABLE)
        return await self.transfer(decision)

    async def _resolve(self, decision: Transfer) -> Transfer | TransferResult:
        """Ask the destination server (Vapi `transfer-destination-request`)."""
        target = decision.dynamic
        assert target is not None
        # Never the credentials (user:pass@) nor the query string: the timeline is stored and shown.
        self.note("transfer-destination-request", url=safe_url(target.url).split("?", 1)[0])
        values: frozenset[str] = frozenset()
        if self.destinations is None:
            answer_failure: str | None = "destination-error: no destination server client"
            resolved = None
        else:
            now_epoch = self.clock.time()
            facts = CallFacts(
                call_id=self.call.call_id,
                from_number=self.call.from_number,
                to_number=self.call.to_number,
                caller_name=self.call.caller_name,
                started_epoch=now_epoch - self.now(),
                now_epoch=now_epoch,
            )
            try:
                answer = await self.destinations.resolve(target, facts)
            except asyncio.CancelledError:
                self._cancelled("(dynamic)", decision.mode)
                raise
            answer_failure, resolved, values = answer.failure, answer.resolved, answer.values
        if not self.live:
            self.record(decision.destination or "(dynamic)", decision.mode, "cancelled")
            return TransferResult("cancelled", "the caller hung up")
        if resolved is None:
            code = answer_failure or "destination-error: no destination"
            self.note("transfer-failed", to="(dynamic)", code=code)
            self.record("(dynamic)", decision.mode, "failed", code)
            await self._say_error(decision)
            return TransferResult("failed", code)
        self.note("transfer-destination", type=resolved.kind, to=resolved.destination)
        if resolved.kind == "assistant" and resolved.value not in target.assistants:
            code = f"destination-error: unknown assistant {resolved.value!r}"
            self.note("transfer-failed", to=resolved.destination, code=code)
            self.record(resolved.destination, "blind", "failed", code)
            return TransferResult("failed", code)
        return dataclasses.replace(
            decision,
            destination=resolved.destination,
            origin="server",
            server_values=values,
            caller_id=resolved.caller_id or decision.caller_id,
            extension=resolved.extension,
            headers={**decision.headers, **resolved.headers},
            msg=resolved.message or decision.msg,
        )

    def _cancelled(self, to: str, mode: str) -> None:
        self.note("transfer-cancelled", to=to, why="the caller hung up")
        self.record(to, mode, "cancelled", "the caller hung up")

    async def _refuse(self, decision: Transfer, refusal: TransferResult) -> TransferResult:
        mode = "blind" if decision.destination.startswith("assistant:") else decision.mode
        self.note("transfer-refused", to=decision.destination, code=refusal.code, origin=decision.origin)
        self.record(decision.destination, mode, "refused", refusal.code)
        await self._say_error(decision)
        return refusal

    async def _say_error(self, decision: Transfer) -> None:
        """After a failure or refusal: `err_msg` (IMS commands always say something)."""
        text = decision.err_msg or (DEFAULT_ERR_MSG if decision.source == "ims" else None)
        if not text or not self.live:
            return
        try:
            await self.call.say(text)
        except CallEnded:
            self.remote_hangup()

    async def _hand_off(self, decision: Transfer) -> TransferResult:
        """Another agent document takes over the call (Vapi `assistant` destination)."""
        if self._handoff is None:
            code = "destination-error: assistant hand-off unavailable"
            self.note("transfer-failed", to=decision.destination, code=code)
            self.record(decision.destination, "blind", "failed", code)
            return TransferResult("failed", code)
        # The other agent is loaded first: `msg` is spoken only if it can take over, `err_msg` if not.
        result = await self._handoff(decision)
        self.record(decision.destination, "blind", result.outcome, result.code)
        self.note(
            "transfer-completed" if result.ok else "transfer-failed",
            to=decision.destination,
            code=result.code,
        )
        spoken = decision.msg if result.ok else decision.err_msg
        try:
            if spoken:
                await self.call.say(spoken)
        except CallEnded:
            self.remote_hangup()
            return TransferResult("cancelled", "the caller hung up")
        return result

    async def transfer(self, decision: Transfer) -> TransferResult:
        """Blind transfer: speak `msg` in full, hand the leg to the destination; on failure speak
        `err_msg` and stay in the conversation. No policy check here: `execute_transfer` did it."""
        if not self.live:
            return TransferResult("cancelled", "call already ending")
        destination = Destination.parse(decision.destination)
        destination = Destination(
            kind=destination.kind,
            value=destination.value,
            caller_id=decision.caller_id or None,
            extension=decision.extension,
            headers=dict(decision.headers),
        )
        if self.state.state == CallState.RINGING:
            # A SWML `connect` before any `answer`: a transfer needs an established call (REFER).
            await self.answer()
        previous = self.state.state
        self.state.to(CallState.TRANSFERRING)
        if self.on_transferring is not None:
            self.on_transferring()
        self.note("transfer-start", to=decision.destination, mode="blind", source=decision.source)
        try:
            if decision.msg:
                await self.call.say(decision.msg)
            self.note(
                "transfer-dial",
                to=decision.destination,
                caller_id=decision.caller_id or self.call.from_number,
            )
            await self.call.transfer(destination)
        except DialFailed as failure:
            code = failure_code(failure)
            self.note("transfer-failed", to=decision.destination, code=code)
            self.record(decision.destination, "blind", "failed", code)
            self.state.to(previous)
            await self._say_error(decision)
            return TransferResult("failed", code)
        except CallEnded:
            self._cancelled(decision.destination, "blind")
            self.remote_hangup()
            return TransferResult("cancelled", "the caller hung up")
        except asyncio.CancelledError:
            # The caller hung up and the runtime stopped the call's work: the dial is cancelled too.
            self._cancelled(decision.destination, "blind")
            raise
        self.record(decision.destination, "blind", "completed")
        self.note("transfer-completed", to=decision.destination)
        self.state.to(CallState.ENDING)
        self._mark_ended(EndedReason.ASSISTANT_FORWARDED_CALL, decision.destination)
        self.state.to(CallState.ENDED)
        return TransferResult("completed")
