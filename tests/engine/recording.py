"""Run an example scenario as `callgate test` does, keeping what the caller's agent sent its model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callgate.scenario import runner as scenario_runner
from callgate.scenario.model_server import RecordedRequest, ScriptedModelServer
from callgate.scenario.report import ScenarioResult
from callgate.scenario.runner import run_scenario_file


def run_recording(
    monkeypatch: pytest.MonkeyPatch, path: Path
) -> tuple[ScenarioResult, list[RecordedRequest]]:
    """Run a scenario file as `callgate test` does, keeping the scripted model server's requests."""
    servers: list[ScriptedModelServer] = []

    class Recording(ScriptedModelServer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            servers.append(self)

    monkeypatch.setattr(scenario_runner, "ScriptedModelServer", Recording)
    result = run_scenario_file(path)
    assert result.passed, "\n".join(result.all_failures) + "\n" + result.outcome.timeline.render()
    return result, servers[0].requests_of("agent")
