from __future__ import annotations

import pytest

from callgate.control.call_state import CallState, CallStateMachine, IllegalTransition


def test_normal_life() -> None:
    machine = CallStateMachine()
    for state in (CallState.ACTIVE, CallState.HELD, CallState.ACTIVE, CallState.ENDING, CallState.ENDED):
        machine.to(state)
    assert not machine.live


def test_ended_is_terminal() -> None:
    machine = CallStateMachine()
    machine.to(CallState.ACTIVE)
    machine.to(CallState.ENDED)
    with pytest.raises(IllegalTransition):
        machine.to(CallState.ACTIVE)


def test_ending_cannot_go_back() -> None:
    machine = CallStateMachine()
    machine.to(CallState.ACTIVE)
    machine.to(CallState.ENDING)
    assert not machine.live
    with pytest.raises(IllegalTransition):
        machine.to(CallState.HELD)
