"""The call's state machine: an illegal transition is an error, never a silent bug."""

from __future__ import annotations

from enum import StrEnum


class CallState(StrEnum):
    RINGING = "ringing"
    ACTIVE = "active"
    HELD = "held"
    TRANSFERRING = "transferring"
    ENDING = "ending"  # closing speech may still be playing; no new turns
    ENDED = "ended"


_ALLOWED: dict[CallState, frozenset[CallState]] = {
    # A ringing call can be rejected (SWML `hangup` before `answer`), or transferred (which answers).
    CallState.RINGING: frozenset({CallState.ACTIVE, CallState.ENDING, CallState.ENDED}),
    CallState.ACTIVE: frozenset({CallState.HELD, CallState.TRANSFERRING, CallState.ENDING, CallState.ENDED}),
    CallState.HELD: frozenset({CallState.ACTIVE, CallState.TRANSFERRING, CallState.ENDING, CallState.ENDED}),
    CallState.TRANSFERRING: frozenset({CallState.ACTIVE, CallState.HELD, CallState.ENDING, CallState.ENDED}),
    CallState.ENDING: frozenset({CallState.ENDED}),
    CallState.ENDED: frozenset(),
}


class IllegalTransition(RuntimeError):
    pass


class CallStateMachine:
    def __init__(self) -> None:
        self.state = CallState.RINGING

    def can(self, target: CallState) -> bool:
        return target in _ALLOWED[self.state]

    def to(self, target: CallState) -> None:
        if target == self.state:
            return
        if not self.can(target):
            raise IllegalTransition(f"call cannot go from {self.state} to {target}")
        self.state = target

    @property
    def live(self) -> bool:
        """The conversation may go on (not ending or ended)."""
        return self.state not in (CallState.ENDING, CallState.ENDED)
