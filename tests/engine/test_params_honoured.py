"""SignalWire params callgate honours beyond the timers: initial_sleep_ms."""

from __future__ import annotations

import json
from pathlib import Path

from callgate.scenario.runner import run_scenario_file


def test_initial_sleep_ms_delays_the_opening_on_the_call_clock(tmp_path: Path) -> None:
    scenario = {
        "name": "initial_sleep_ms",
        "agent": {
            "sections": {
                "main": [{"ai": {"prompt": {"text": "Greet."}, "params": {"initial_sleep_ms": 2500}}}]
            }
        },
        "llm": [{"text": "Hello there."}],
        "turns": ["hangup"],
        "expect": {"said": ["Hello there."]},
    }
    path = tmp_path / "sleep.yaml"
    path.write_text(json.dumps(scenario), encoding="utf-8")
    result = run_scenario_file(path)
    assert result.passed, "\n".join(result.all_failures)
    assert result.outcome is not None
    events = {e.kind: e.t for e in reversed(result.outcome.timeline.events)}
    assert events["answered"] < 0.1 and events["model-request"] >= 2.5
