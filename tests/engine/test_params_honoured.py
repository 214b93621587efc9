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


def test_background_file_plays_under_the_conversation(tmp_path: Path) -> None:
    scenario = {
        "name": "background_file",
        "agent": {
            "sections": {
                "main": [
                    {
                        "ai": {
                            "prompt": {"text": "Greet."},
                            "params": {"background_file": "https://cdn.example.com/office.mp3"},
                        }
                    }
                ]
            }
        },
        "llm": [{"text": "Hello there."}],
        "turns": ["hangup"],
        "expect": {"said": ["Hello there."]},
    }
    path = tmp_path / "background.yaml"
    path.write_text(json.dumps(scenario), encoding="utf-8")
    result = run_scenario_file(path)
    assert result.passed, "\n".join(result.all_failures)
    assert result.outcome is not None
    kinds = [(e.kind, dict(e.data)) for e in result.outcome.timeline.events]
    plays = [data for kind, data in kinds if kind == "play"]
    assert plays == [{"source": "https://cdn.example.com/office.mp3", "loop": True}]
    first_say = next(i for i, (kind, _) in enumerate(kinds) if kind == "say")
    assert [kind for kind, _ in kinds].index("play") < first_say
