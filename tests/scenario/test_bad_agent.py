"""A scenario whose agent document is broken or unreachable is bad input, named clearly — not a crash."""

from __future__ import annotations

from pathlib import Path

from callgate.scenario.runner import run_scenario_file


def _write(tmp_path: Path, agent: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(f"name: bad agent\nagent: {agent}\nllm: []\nturns: []\n")
    return path


def test_an_invalid_agent_document_is_malformed_input(tmp_path: Path) -> None:
    (tmp_path / "agent.yaml").write_text(
        "sections:\n  main:\n    - ai:\n        params:\n          hard_stop_time: never\n"
    )
    result = run_scenario_file(_write(tmp_path, "agent.yaml"))
    assert result.malformed and not result.passed
    assert result.error is not None
    assert "agent.yaml:5: sections.main[0].ai.params.hard_stop_time" in result.error
    assert "crashed" not in result.error


def test_an_unreachable_agent_url_is_malformed_input(tmp_path: Path) -> None:
    # Port 9 on loopback: nothing listens there, the connection is refused at once.
    result = run_scenario_file(_write(tmp_path, "http://127.0.0.1:9/agent"))
    assert result.malformed and not result.passed
    assert result.error is not None and "could not fetch the document" in result.error
