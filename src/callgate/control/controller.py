"""Carries out the agent's decisions on the caller's leg: hang-up (once) and blind transfer.

Hang-up is terminal and idempotent: however many times the model asks, the call ends once, with the
first reason. Every operation is awaited to completion, so a goodbye queued before a hang-up has
finished playing when the BYE goes out.
"""

from __future__ import annotations

import logging
from typing import Any

from callgate.agent.decisions import Decision, Hangup, Transfer, TransferResult
from callgate.control.call_state import CallState, CallStateMachine
from callgate.telephony.base import Call, CallEnded, Destination, DialFailed, EndedReason, Switch
from callgate.telephony.clock import Clock
from callgate.timeline import CallOutcome, TransferRecord

log = logging.getLogger(__name__)


class CallController:
    """Owns the caller leg's state; the only place that hangs up or transfers it."""

    def __init__(
        self, call: Call, switch: Switch | None, clock: Clock, outcome: CallOutcome, started_at: float
    ) -> None:
        self.call = call
        self.switch = switch
        self.clock = clock
        self.outcome = outcome
        self.state = CallStateMachine()
        self._started_at = started_at

    # ------------------------------------------------------------ helpers

    def now(self) -> float:
        return self.clock.monotonic() - self._started_at

    def note(self, kind: str, **data: Any) -> None:
        self.outcome.timeline.add(self.now(), kind, **data)

    @property
    def live(self) -> bool:
        return self.state.live

    # ------------------------------------------------------------ lifecycle

    async def answer(self) -> None:
        await self.call.answer()
        self.state.to(CallState.ACTIVE)

    async def execute(self, decision: Decision) -> TransferResult | None:
        if isinstance(decision, Hangup):
            await self.hangup(decision.reason, decision.detail)
            return None
        return await self.transfer(decision)

    async def hangup(self, reason: EndedReason, detail: str = "") -> None:
        """End the call once; later requests (and their reasons) are ignored but logged."""
        if self.state.state in (CallState.ENDING, CallState.ENDED):
            self.note("hangup-ignored", reason=str(reason), why="call already ending")
            return
        self.state.to(CallState.ENDING)
        self._mark_ended(reason, detail)
        try:
            await self.call.hangup(str(reason))
        finally:
            self.state.to(CallState.ENDED)

    def remote_hangup(self, cause: str = "hangup") -> None:
        """The caller left: the call is over whatever was in flight."""
        if self.state.state == CallState.ENDED:
            return
        if self.outcome.ended_reason is None:
            self._mark_ended(EndedReason.CUSTOMER_ENDED_CALL, cause)
        self.state.to(CallState.ENDED)

    def _mark_ended(self, reason: EndedReason, detail: str) -> None:
        if self.outcome.ended_reason is None:
            self.outcome.ended_reason = str(reason)
            self.outcome.hangup_at = self.now()
        self.note("hangup", reason=str(reason), **({"detail": detail} if detail else {}))

    # ------------------------------------------------------------ transfer

    async def transfer(self, decision: Transfer) -> TransferResult:
        """Blind transfer: speak `msg`, hand the leg to the destination; on failure speak `err_msg`."""
        if not self.live:
            return TransferResult("cancelled", "call already ending")
        destination = Destination.parse(decision.destination)
        if decision.caller_id:
            destination = Destination(
                kind=destination.kind,
                value=destination.value,
                caller_id=decision.caller_id,
                headers=dict(decision.headers),
            )
        previous = self.state.state
        self.state.to(CallState.TRANSFERRING)
        self.note("transfer-start", to=decision.destination, mode="blind", source=decision.source)
        try:
            if decision.msg:
                await self.call.say(decision.msg)
            await self.call.transfer(destination)
        except DialFailed as failure:
            self.note("transfer-failed", to=decision.destination, code=failure.code)
            self.outcome.transfers.append(
                TransferRecord(to=decision.destination, mode="blind", result="failed", reason=failure.code)
            )
            self.state.to(previous if previous != CallState.RINGING else CallState.ACTIVE)
            if decision.err_msg:
                try:
                    await self.call.say(decision.err_msg)
                except CallEnded:
                    self.remote_hangup()
            return TransferResult("failed", failure.code)
        except CallEnded:
            self.outcome.transfers.append(
                TransferRecord(to=decision.destination, mode="blind", result="cancelled")
            )
            self.remote_hangup()
            return TransferResult("cancelled", "the caller hung up")
        self.outcome.transfers.append(
            TransferRecord(to=decision.destination, mode="blind", result="completed")
        )
        self.note("transfer-completed", to=decision.destination)
        self.state.to(CallState.ENDING)
        self._mark_ended(EndedReason.ASSISTANT_FORWARDED_CALL, decision.destination)
        self.state.to(CallState.ENDED)
        return TransferResult("completed")
