"""The console report and the JSON report's shape."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from callgate.scenario.report import ScenarioResult, print_console, print_json, summary_line
from callgate.timeline import (
    CallOutcome,
    FunctionCallRecord,
    HttpExchange,
    Timeline,
    TransferRecord,
    Utterance,
)


def console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=120, color_system=None, force_terminal=False), buffer


def failed_result() -> ScenarioResult:
    timeline = Timeline()
    timeline.add(0.0, "answered")
    timeline.add(1.5, "agent-said", text="Hello [there]")
    timeline.add(40.0, "hangup", reason="silence-timed-out")
    outcome = CallOutcome(
        ended_reason="silence-timed-out",
        hangup_at=40.0,
        utterances=[Utterance("Hello [there]", 0.5, 1.5)],
        functions=[FunctionCallRecord("get_weather", {"city": "Paris"}, "sunny")],
        transfers=[TransferRecord("+15550002222", "warm", "failed", "busy")],
        http=[HttpExchange("POST", "https://example.com/f", {"a": 1}, '{"a": 1}', 200, True)],
        timeline=timeline,
    )
    return ScenarioResult(
        file=Path("scenarios/silence.yaml"),
        name="silence ends the call",
        failures=["ended: expected assistant-ended-call, got silence-timed-out"],
        outcome=outcome,
        duration=40.0,
    )


def passed_result() -> ScenarioResult:
    outcome = CallOutcome(ended_reason="customer-ended-call", hangup_at=3.0)
    return ScenarioResult(file=Path("a.yaml"), name="greets", outcome=outcome, duration=3.0)


def test_console_report_lines_failures_timeline_and_summary() -> None:
    out, buffer = console()
    print_console([passed_result(), failed_result()], out)
    text = buffer.getvalue()
    lines = text.splitlines()
    assert lines[0].startswith("✓ greets") and "3.0s" in lines[0]
    assert any(line.startswith("✗ silence ends the call") and "40.0s" in line for line in lines)
    assert "• ended: expected assistant-ended-call, got silence-timed-out" in text
    # The failing scenario's timeline, markup-like text shown literally.
    assert "agent-said" in text and "Hello [there]" in text and "40.000s" in text
    assert lines[-1] == "1 passed, 1 failed"


def test_passing_scenarios_show_no_timeline() -> None:
    out, buffer = console()
    result = passed_result()
    assert result.outcome is not None
    result.outcome.timeline.add(0.0, "answered")
    print_console([result], out)
    assert buffer.getvalue().splitlines() == ["✓ greets (3.0s virtual)", "1 passed, 0 failed"]


def test_malformed_scenario_shows_its_error() -> None:
    out, buffer = console()
    bad = ScenarioResult(
        file=Path("bad.yaml"), name="bad", error="turns[0].wait: not a duration", malformed=True
    )
    print_console([bad], out)
    text = buffer.getvalue()
    assert "✗ bad" in text and "• turns[0].wait: not a duration" in text
    assert text.splitlines()[-1] == "0 passed, 1 failed"


def test_json_report_shape() -> None:
    out, buffer = console()
    bad = ScenarioResult(file=Path("bad.yaml"), name="bad", error="unknown field 'x'", malformed=True)
    print_json([failed_result(), passed_result(), bad], out)
    report = json.loads(buffer.getvalue())
    assert isinstance(report, list) and len(report) == 3
    first = report[0]
    for key in (
        "file",
        "name",
        "passed",
        "failures",
        "ended_reason",
        "transcript",
        "timeline",
        "functions",
        "http",
        "transfers",
    ):
        assert key in first
    assert first["file"] == "scenarios/silence.yaml" and first["passed"] is False
    assert first["ended_reason"] == "silence-timed-out"
    assert first["transcript"] == "Hello [there]"
    assert first["timeline"][1] == {
        "t": 1.5,
        "leg": "caller",
        "kind": "agent-said",
        "data": {"text": "Hello [there]"},
    }
    assert first["functions"] == [{"name": "get_weather", "arguments": {"city": "Paris"}, "result": "sunny"}]
    assert first["http"][0]["url"] == "https://example.com/f" and first["http"][0]["json"] == {"a": 1}
    assert first["transfers"] == [
        {"to": "+15550002222", "mode": "warm", "result": "failed", "reason": "busy"}
    ]
    assert report[1]["passed"] is True and report[1]["failures"] == []
    assert report[2]["failures"] == ["unknown field 'x'"] and report[2]["malformed"] is True
    assert report[2]["ended_reason"] is None and report[2]["timeline"] == []


def test_json_report_survives_unserialisable_timeline_data() -> None:
    out, buffer = console()
    result = failed_result()
    assert result.outcome is not None
    result.outcome.timeline.add(2.0, "odd", value=object())
    print_json([result], out)
    (entry,) = json.loads(buffer.getvalue())
    assert entry["timeline"][-1]["data"]["value"].startswith("<object object")


def test_summary_line() -> None:
    assert summary_line([]) == "0 passed, 0 failed"
    assert summary_line([passed_result(), passed_result()]) == "2 passed, 0 failed"
