"""The driver's turn semantics, on the real sim caller leg and virtual time, with a fake engine.

Speech on the sim channel lasts 0.4 s per word: the greeting "Hello, how can I help?" ends at 2.0 s.
"""

from __future__ import annotations

from typing import Any

import pytest

from callgate.channels.sim import SimWorld
from callgate.scenario.driver import TurnDriver, drive
from callgate.scenario.format import Scenario, Turn, parse_scenario
from callgate.telephony.clock import VirtualClock, run_virtual
from callgate.timeline import CallOutcome, TimelineEvent

from .fake_engine import FakeEngine


def turns(*items: Any) -> list[Turn]:
    scenario: Scenario = parse_scenario({"name": "t", "agent": {}, "turns": list(items)}, file="t.yaml")
    return scenario.turns


def run(
    items: list[Any], *, max_duration: float = 600.0, **engine_options: Any
) -> tuple[CallOutcome, FakeEngine]:
    async def main(clock: VirtualClock) -> tuple[CallOutcome, FakeEngine]:
        world = SimWorld(clock)
        engine = FakeEngine(world.caller, clock, world.timeline, **engine_options)
        outcome = await drive(
            engine,
            world.caller,
            turns(*items),
            clock=clock,
            timeline=world.timeline,
            max_duration=max_duration,
            now=world.now,
        )
        return outcome, engine

    return run_virtual(main)


def events(outcome: CallOutcome, kind: str) -> list[TimelineEvent]:
    return outcome.timeline.of_kind(kind)


def test_user_turn_is_spoken_once_the_agent_finished() -> None:
    outcome, _ = run([{"user": "hi"}, {"user": "and more"}], max_duration=60)
    first, second = events(outcome, "caller-says")
    assert first.t == pytest.approx(2.0)  # after the greeting
    assert second.t == pytest.approx(2.0 + 1.2)  # after "You said: hi."
    assert outcome.transcript() == "Hello, how can I help? You said: hi. You said: and more."


def test_after_the_last_turn_the_call_runs_until_max_duration_then_the_caller_hangs_up() -> None:
    outcome, _ = run([{"user": "hi"}], max_duration=60)
    assert outcome.ended_reason == "customer-ended-call"
    assert outcome.hangup_at == pytest.approx(60.0)
    assert [e.data for e in events(outcome, "max-duration")] == [{"seconds": 60.0}]


def test_wait_is_silence_counted_from_the_end_of_the_agents_answer() -> None:
    outcome, _ = run([{"wait": "35s"}, {"user": "still here"}], max_duration=100)
    (says,) = events(outcome, "caller-says")
    assert says.t == pytest.approx(2.0 + 35.0)


def test_the_call_may_end_by_itself_during_a_wait_and_later_turns_are_skipped() -> None:
    outcome, _ = run([{"wait": "35s"}, {"user": "hello?"}, "hangup"], silence=30)
    assert outcome.ended_reason == "silence-timed-out"
    assert outcome.hangup_at == pytest.approx(2.0 + 30.0 + 1.2)
    skipped = events(outcome, "turn-skipped")
    assert [(e.data["index"], e.data["reason"]) for e in skipped] == [
        (1, "the call had ended"),
        (2, "the call had ended"),
    ]
    assert events(outcome, "caller-says") == []


def test_after_the_last_turn_the_call_may_end_by_itself() -> None:
    outcome, _ = run([{"user": "hi"}], silence=30)
    assert outcome.ended_reason == "silence-timed-out"
    assert outcome.hangup_at == pytest.approx(2.0 + 1.2 + 30.0 + 1.2)
    assert events(outcome, "max-duration") == []


def test_agent_hangup_skips_remaining_turns() -> None:
    outcome, _ = run([{"user": "ok bye"}, {"user": "wait!"}, {"hangup": True}])
    assert outcome.ended_reason == "assistant-ended-call"
    assert outcome.utterances[-1].text == "Goodbye!"
    assert outcome.utterances[-1].end <= (outcome.hangup_at or 0)
    assert [e.data["turn"] for e in events(outcome, "turn-skipped")] == ["user: 'wait!'", "hangup"]


def test_hangup_turn_after_the_agents_answer() -> None:
    outcome, _ = run([{"user": "hi"}, "hangup"])
    assert outcome.ended_reason == "customer-ended-call"
    assert outcome.hangup_at == pytest.approx(2.0 + 1.2)
    # The reply was heard in full before the caller left.
    assert outcome.transcript().endswith("You said: hi.")


def test_dtmf_turn() -> None:
    outcome, _ = run([{"dtmf": "12#"}, "hangup"])
    assert [e.data["digits"] for e in events(outcome, "dtmf")] == ["12#"]
    assert "You pressed 12#." in outcome.transcript()


def test_user_turns_go_at_once_while_the_caller_is_on_hold() -> None:
    outcome, _ = run([{"user": "transfer me"}, {"user": "hello?"}, "hangup"], hold_for=10)
    (held,) = events(outcome, "hold")
    (dropped,) = events(outcome, "caller-says-dropped")
    (hangup,) = events(outcome, "remote-hangup")
    # The runner did not wait for the transfer: the caller spoke while held (and was not heard),
    # then hung up, all before the 10 s hold was over.
    assert held.t == pytest.approx(2.0 + 0.8)  # greeting, then "Transferring you."
    assert held.t <= dropped.t <= hangup.t < held.t + 10
    assert outcome.ended_reason == "customer-ended-call"
    assert events(outcome, "unhold") == []


def test_turns_wait_again_once_the_hold_is_over() -> None:
    outcome, _ = run([{"user": "transfer me"}, {"wait": "20s"}, {"user": "hello?"}, "hangup"], hold_for=10)
    (held,) = events(outcome, "hold")
    (unheld,) = events(outcome, "unhold")
    (says,) = [e for e in events(outcome, "caller-says") if e.data["text"] == "hello?"]
    # The wait started at once (on hold) and outlasted the hold and the agent's "Nobody answered,
    # sorry." after it, so the next turn came right when the wait was over.
    assert unheld.t == pytest.approx(held.t + 10)
    assert says.t == pytest.approx(held.t + 20)
    assert "Nobody answered, sorry." in outcome.transcript()


def test_max_duration_caps_turns_in_progress() -> None:
    outcome, _ = run([{"wait": "100s"}, {"user": "late"}], max_duration=50)
    assert outcome.ended_reason == "customer-ended-call"
    assert outcome.hangup_at == pytest.approx(50.0)
    skipped = events(outcome, "turn-skipped")
    assert [(e.data["index"], e.data["reason"]) for e in skipped] == [(1, "max_duration reached")]


def test_a_failing_engine_is_not_swallowed() -> None:
    async def main(clock: VirtualClock) -> None:
        world = SimWorld(clock)
        engine = FakeEngine(world.caller, clock, world.timeline, fail_idle=True)
        driver = TurnDriver(
            engine, world.caller, turns({"user": "hi"}), clock=clock, timeline=world.timeline, max_duration=60
        )
        with pytest.raises(RuntimeError, match="engine exploded"):
            await driver.run()
        assert not driver.capped

    run_virtual(main)


def test_no_turns_at_all() -> None:
    outcome, _ = run([], max_duration=5)
    assert outcome.ended_reason == "customer-ended-call"
    assert outcome.transcript() == "Hello, how can I help?"
