"""SignalWire's persist_global_data and swaig_set_global_data: global_data across a call's AI sessions."""

from __future__ import annotations

from pathlib import Path

import pytest

from .recording import run_recording

SCENARIO = Path(__file__).resolve().parents[2] / "examples" / "scenarios" / "persist_global_data.yaml"


def test_the_second_ai_session_starts_with_the_global_data_the_first_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result, requests = run_recording(monkeypatch, SCENARIO)
    second = requests[2]  # the second ai verb's first request
    assert second.messages[0]["content"] == "You are billing. The caller is Ann."
    assert result.outcome is not None
    kinds = [(e.kind, dict(e.data)) for e in result.outcome.timeline.events]
    assert ("global-data-restored", {"keys": ["caller_name"]}) in [
        (k, d) for k, d in kinds if k.startswith("global")
    ]
    # swaig_set_global_data: false in the second session: its set_global_data was refused.
    assert "still Ann" in requests[-1].messages[-1]["content"]


def test_without_persist_global_data_the_next_session_starts_afresh(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    text = SCENARIO.read_text(encoding="utf-8")
    first_prompt = "            text: You take the caller's name with save_name, then hand over.\n"
    assert first_prompt in text
    text = text.replace(first_prompt, first_prompt + "          params: {persist_global_data: false}\n")
    text = text.replace('match: "still Ann"', 'match: "still \\\\."')
    path = tmp_path / "fresh.yaml"
    path.write_text(text, encoding="utf-8")
    result, requests = run_recording(monkeypatch, path)
    assert requests[2].messages[0]["content"] == "You are billing. The caller is ."
    assert result.outcome is not None
    assert not [e for e in result.outcome.timeline.events if e.kind == "global-data-restored"]
