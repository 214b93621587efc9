"""The warm-transfer example scenarios, looked at more closely than their `expect` blocks can:
which legs were bridged or hung up, where the consult agent spoke, the summary's source, and the
consult agent's turn-taking."""

from __future__ import annotations

from pathlib import Path

import pytest

from callgate.scenario.runner import run_scenario_file
from callgate.timeline import CallOutcome, TimelineEvent

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"
SAM, ALEX = "+15550002222", "+15550003333"


def run(name: str) -> CallOutcome:
    result = run_scenario_file(EXAMPLES / f"{name}.yaml")
    assert result.passed, "\n".join(result.all_failures)
    assert result.outcome is not None
    return result.outcome


def kinds(outcome: CallOutcome, leg: str | None = None) -> list[str]:
    return [e.kind for e in outcome.timeline.events if leg is None or e.leg == leg]


def one(outcome: CallOutcome, kind: str) -> TimelineEvent:
    [event] = outcome.timeline.of_kind(kind)
    return event


def test_connect_bridges_after_the_briefing_and_keeps_consult_speech_off_the_caller_leg() -> None:
    outcome = run("warm_connect")
    order = kinds(outcome, "caller")
    steps = ["warm-hold", "warm-music", "warm-dial", "warm-answered", "warm-summary", "warm-consult"]
    steps += ["warm-music-stopped", "bridge", "warm-bridged"]
    assert [k for k in order if k in steps] == steps
    assert one(outcome, "bridge").data == {"a": "caller", "b": SAM}
    assert one(outcome, "warm-summary").data["source"] == "model"
    assert "Hi Sam" in outcome.transcript(SAM)
    assert "Hi Sam" not in outcome.transcript("caller")
    assert "unhold" not in order  # bridged straight from hold: no introduction was asked for
    assert len(outcome.timeline.of_kind("consult-request")) == 2


def test_summary_timeout_briefs_with_the_last_turns() -> None:
    outcome = run("warm_summary_timeout")
    summary = one(outcome, "warm-summary")
    assert summary.data["source"] == "fallback"
    assert summary.data["why"] == "timeout after 8s"
    assert "Customer: The router keeps blinking red, I want a supervisor." in summary.data["text"]
    # The dial was not held up by the summary: the supervisor answered after 1 s, the briefing waited.
    assert one(outcome, "warm-consult").t - one(outcome, "warm-hold").t == pytest.approx(8.0)


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("warm_busy", "busy"),
        ("warm_no_answer", "no-answer"),
        ("warm_decline", "declined: in a meeting until three"),
        ("warm_supervisor_hangs_up", "supervisor-hung-up"),
        ("warm_consult_timeout", "timeout"),
    ],
)
def test_failures_bring_the_caller_back(name: str, code: str) -> None:
    outcome = run(name)
    order = kinds(outcome, "caller")
    assert one(outcome, "warm-failed").data["code"] == code
    assert order.index("warm-unhold") > order.index("warm-hold")
    assert "bridge" not in order
    # Nobody is left on a supervisor leg: every answered one ended.
    answered = {e.leg for e in outcome.timeline.of_kind("dial-answered")}
    ended = {
        e.leg for e in outcome.timeline.events if e.kind in ("hangup", "remote-hangup") and e.leg != "caller"
    }
    assert answered <= ended


def test_decline_makes_no_consult_request_after_the_verdict() -> None:
    outcome = run("warm_decline")
    assert len(outcome.timeline.of_kind("consult-request")) == 2
    skipped = [e for e in outcome.timeline.of_kind("turn-skipped") if e.leg == SAM]
    assert len(skipped) == 1
    hangup = [e for e in outcome.timeline.of_kind("hangup") if e.leg == SAM]
    assert hangup[0].data["reason"] == "declined: in a meeting until three"


def test_redirect_hangs_up_the_first_supervisor_and_bridges_the_second() -> None:
    outcome = run("warm_redirect")
    assert [e.leg for e in outcome.timeline.of_kind("dial-answered")] == [SAM, ALEX]
    assert one(outcome, "warm-redirect").data == {"to": ALEX, "previous": SAM}
    assert [e.leg for e in outcome.timeline.of_kind("hangup") if e.leg != "caller"] == [SAM]
    assert one(outcome, "bridge").data == {"a": "caller", "b": ALEX}
    assert "Hi Alex" in outcome.transcript(ALEX)


def test_caller_hanging_up_on_hold_cancels_the_dial() -> None:
    outcome = run("warm_caller_hangs_up_held")
    assert [e.leg for e in outcome.timeline.of_kind("dial-cancelled")] == [SAM]
    assert not outcome.timeline.of_kind("dial-answered")
    assert one(outcome, "warm-cancelled").data["to"] == SAM


def test_caller_hanging_up_during_the_briefing_hangs_up_the_supervisor() -> None:
    outcome = run("warm_caller_hangs_up_briefing")
    [supervisor_hangup] = [e for e in outcome.timeline.of_kind("hangup") if e.leg == SAM]
    assert supervisor_hangup.data["reason"] == "caller-hung-up"
    assert "bridge" not in kinds(outcome)
    # The briefing was cut where the supervisor stopped hearing it.
    assert [u.cut for u in outcome.utterances if u.leg == SAM] == [True]


def test_introduction_is_spoken_to_both_parties_off_hold_before_the_bridge() -> None:
    outcome = run("warm_introduction")
    billing = "sip:billing@pbx.example.com"
    intro = "I'm connecting you now with our billing team. Thank you for holding."
    assert outcome.transcript("caller").endswith(intro)
    assert outcome.transcript(billing).endswith(intro)
    order = kinds(outcome, "caller")
    assert order.index("warm-unhold") < order.index("warm-introduction") < order.index("bridge")


def test_a_refused_redirect_dials_nothing_and_brings_the_caller_back() -> None:
    outcome = run("warm_redirect_refused")
    assert [e.leg for e in outcome.timeline.of_kind("dial")] == [SAM]
    assert one(outcome, "warm-redirect-refused").data["to"] == "+19005550199"
    assert "warm-unhold" in kinds(outcome, "caller")


EDGE = Path(__file__).parent / "scenarios"


def test_a_redirect_loop_ends_after_two_redirects() -> None:
    result = run_scenario_file(EDGE / "redirect_loop.yaml")
    assert result.passed, "\n".join(result.all_failures)
    assert result.outcome is not None
    assert len(result.outcome.timeline.of_kind("dial-answered")) == 3


def test_caller_leaving_during_the_introduction_hangs_up_the_supervisor() -> None:
    result = run_scenario_file(EDGE / "caller_leaves_during_introduction.yaml")
    assert result.passed, "\n".join(result.all_failures)
    outcome = result.outcome
    assert outcome is not None
    assert "warm-introduction" in kinds(outcome)
    assert "bridge" not in kinds(outcome)
    billing = [e for e in outcome.timeline.of_kind("hangup") if e.leg == "sip:billing@pbx.example.com"]
    assert billing and billing[0].data["reason"] == "caller-hung-up"
