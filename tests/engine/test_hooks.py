"""SignalWire's startup/hangup hooks: when they run, and that the report never waits on a broken one."""

from __future__ import annotations

from pathlib import Path

import pytest

from callgate.scenario.runner import run_scenario_file

SCENARIOS = Path(__file__).resolve().parents[2] / "examples" / "scenarios"


def kinds(path: Path) -> list[tuple[str, dict[str, object]]]:
    result = run_scenario_file(path)
    assert result.passed, "\n".join(result.all_failures)
    assert result.outcome is not None
    return [(event.kind, dict(event.data)) for event in result.outcome.timeline.events]


def index(events: list[tuple[str, dict[str, object]]], kind: str, **match: object) -> int:
    for position, (found, data) in enumerate(events):
        if found == kind and all(data.get(key) == value for key, value in match.items()):
            return position
    raise AssertionError(f"no {kind} {match} in {[k for k, _ in events]}")


def test_startup_hook_before_first_model_request_and_hangup_hook_before_report() -> None:
    events = kinds(SCENARIOS / "hooks_startup_and_hangup.yaml")
    assert index(events, "hook-result", name="startup_hook") < index(events, "model-request")
    hangup = index(events, "hangup")
    hook = index(events, "hook-result", name="hangup_hook")
    assert hangup < hook < index(events, "post-prompt") < index(events, "report-delivered")


@pytest.mark.parametrize("name", ["hooks_caller_hangs_up.yaml", "hooks_hangup_hook_fails.yaml"])
def test_hangup_hook_for_every_ending_and_report_still_delivered(name: str) -> None:
    events = kinds(SCENARIOS / name)
    hook = index(events, "hook", name="hangup_hook")
    assert hook < index(events, "report-delivered")


def test_a_hook_that_hangs_is_given_up() -> None:
    events = kinds(SCENARIOS / "hooks_hangup_hook_fails.yaml")
    hook = index(events, "hook", name="hangup_hook")
    # The webhook's own timeout or the hook deadline, whichever comes first: a failure is recorded.
    ended = [
        data
        for kind, data in events[hook:]
        if kind in ("hook-result", "hook-failed") and data.get("name") == "hangup_hook"
    ]
    assert ended and ended[0].get("error"), ended
    assert hook < index(events, "report-delivered")
