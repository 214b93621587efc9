"""Both warm-transfer state machines: every legal transition, and illegal ones raise."""

from __future__ import annotations

import pytest

from callgate.control.warm.states import (
    CALLER_TRANSITIONS,
    SUPERVISOR_TRANSITIONS,
    CallerMachine,
    CallerState,
    IllegalWarmTransition,
    SupervisorMachine,
    SupervisorState,
)

CALLER_PATHS = [
    [CallerState.ESCALATED, CallerState.ACTIVE],  # the supervisor was unavailable: back to the agent
    [CallerState.ESCALATED, CallerState.INACTIVE],  # merged, or hung up on hold
    [CallerState.INACTIVE],  # hung up before any transfer
    [CallerState.ESCALATED, CallerState.ACTIVE, CallerState.ESCALATED, CallerState.INACTIVE],  # retry
]
SUPERVISOR_PATHS = [
    [SupervisorState.DIALING, SupervisorState.SUMMARIZING, SupervisorState.MERGED],
    [SupervisorState.DIALING, SupervisorState.SUMMARIZING, SupervisorState.FAILED],
    [SupervisorState.DIALING, SupervisorState.FAILED],
    [SupervisorState.FAILED],
]


@pytest.mark.parametrize("path", CALLER_PATHS, ids=lambda p: "-".join(p))
def test_caller_legal_paths(path: list[CallerState]) -> None:
    machine = CallerMachine()
    assert machine.state is CallerState.ACTIVE
    for state in path:
        machine.to(state)
        assert machine.state is state


@pytest.mark.parametrize("path", SUPERVISOR_PATHS, ids=lambda p: "-".join(p))
def test_supervisor_legal_paths(path: list[SupervisorState]) -> None:
    machine = SupervisorMachine()
    assert machine.state is SupervisorState.INACTIVE
    for state in path:
        machine.to(state)
    assert machine.final


def test_tables_cover_every_pair() -> None:
    """Every pair not in a table is refused, every pair in it allowed (no silent self-loops)."""
    for table, states in ((CALLER_TRANSITIONS, CallerState), (SUPERVISOR_TRANSITIONS, SupervisorState)):
        assert set(table) == set(states)
        for source, targets in table.items():
            assert source not in targets


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ([], CallerState.ACTIVE),
        ([CallerState.INACTIVE], CallerState.ACTIVE),
        ([CallerState.INACTIVE], CallerState.ESCALATED),
        ([CallerState.ESCALATED], CallerState.ESCALATED),
    ],
)
def test_caller_illegal(path: list[CallerState], bad: CallerState) -> None:
    machine = CallerMachine()
    for state in path:
        machine.to(state)
    with pytest.raises(IllegalWarmTransition, match=f"caller cannot go from {machine.state} to {bad}"):
        machine.to(bad)
    assert machine.state is (path[-1] if path else CallerState.ACTIVE)


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ([], SupervisorState.SUMMARIZING),  # briefing someone who was never dialled
        ([], SupervisorState.MERGED),
        ([SupervisorState.DIALING], SupervisorState.MERGED),  # bridged without a briefing
        ([SupervisorState.DIALING, SupervisorState.FAILED], SupervisorState.MERGED),
        (
            [SupervisorState.DIALING, SupervisorState.SUMMARIZING, SupervisorState.MERGED],
            SupervisorState.FAILED,
        ),
        ([SupervisorState.DIALING, SupervisorState.SUMMARIZING], SupervisorState.DIALING),
    ],
)
def test_supervisor_illegal(path: list[SupervisorState], bad: SupervisorState) -> None:
    machine = SupervisorMachine()
    for state in path:
        machine.to(state)
    with pytest.raises(IllegalWarmTransition):
        machine.to(bad)
    assert not machine.can(bad)
