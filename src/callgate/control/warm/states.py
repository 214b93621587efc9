"""The warm transfer's two state machines (seed 001): one for the caller, one for the supervisor.

Explicit enums and transition tables, as for the call itself: an illegal transition raises instead of
leaving a leg in a state nobody planned for (a supervisor alone in a bridge, a caller held forever).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Generic, TypeVar


class CallerState(StrEnum):
    ACTIVE = "active"  # talking with the caller's agent
    ESCALATED = "escalated"  # on hold while the supervisor is dialled and briefed
    INACTIVE = "inactive"  # handed to the supervisor, or gone


class SupervisorState(StrEnum):
    INACTIVE = "inactive"  # not dialled yet
    DIALING = "dialing"
    SUMMARIZING = "summarizing"  # answered; the consult agent briefs them
    MERGED = "merged"  # bridged with the caller
    FAILED = "failed"  # no answer, busy, declined, redirected, hung up, timed out, cancelled


CALLER_TRANSITIONS: dict[CallerState, frozenset[CallerState]] = {
    CallerState.ACTIVE: frozenset({CallerState.ESCALATED, CallerState.INACTIVE}),
    CallerState.ESCALATED: frozenset({CallerState.ACTIVE, CallerState.INACTIVE}),
    CallerState.INACTIVE: frozenset(),
}

SUPERVISOR_TRANSITIONS: dict[SupervisorState, frozenset[SupervisorState]] = {
    SupervisorState.INACTIVE: frozenset({SupervisorState.DIALING, SupervisorState.FAILED}),
    SupervisorState.DIALING: frozenset({SupervisorState.SUMMARIZING, SupervisorState.FAILED}),
    SupervisorState.SUMMARIZING: frozenset({SupervisorState.MERGED, SupervisorState.FAILED}),
    SupervisorState.MERGED: frozenset(),
    SupervisorState.FAILED: frozenset(),
}


class IllegalWarmTransition(RuntimeError):
    """A warm-transfer state machine was asked for a move its table does not allow."""


S = TypeVar("S", CallerState, SupervisorState)


class _Machine(Generic[S]):
    def __init__(self, name: str, initial: S, table: dict[S, frozenset[S]]) -> None:
        self.name = name
        self.state: S = initial
        self._table: dict[S, frozenset[S]] = table

    def can(self, target: S) -> bool:
        return target in self._table[self.state]

    def to(self, target: S) -> None:
        if not self.can(target):
            raise IllegalWarmTransition(f"{self.name} cannot go from {self.state} to {target}")
        self.state = target

    @property
    def final(self) -> bool:
        return not self._table[self.state]


class CallerMachine(_Machine[CallerState]):
    def __init__(self) -> None:
        super().__init__("caller", CallerState.ACTIVE, CALLER_TRANSITIONS)


class SupervisorMachine(_Machine[SupervisorState]):
    def __init__(self) -> None:
        super().__init__("supervisor", SupervisorState.INACTIVE, SUPERVISOR_TRANSITIONS)
