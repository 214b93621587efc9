"""Every example scenario passes — run the way users run them — and broken expectations fail."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from callgate.scenario.runner import run_scenario_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "scenarios").glob("*.yaml"))
FAILING = Path(__file__).parent / "failing"
CALLGATE = ROOT / ".venv" / "bin" / "callgate"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_scenario_passes(path: Path) -> None:
    result = run_scenario_file(path)
    assert result.passed, (
        "\n".join(result.all_failures) + "\n" + (result.outcome.timeline.render() if result.outcome else "")
    )


def test_examples_cover_every_hangup_path() -> None:
    ended = set()
    for path in EXAMPLES:
        text = path.read_text()
        for line in text.splitlines():
            if line.strip().startswith("ended:"):
                ended.add(line.split(":", 1)[1].strip())
    assert {
        "assistant-ended-call",
        "assistant-said-end-call-phrase",
        "silence-timed-out",
        "exceeded-max-duration",
        "customer-ended-call",
        "assistant-forwarded-call",
        "pipeline-error",
    } <= ended


def test_callgate_test_command_json() -> None:
    proc = subprocess.run(
        [str(CALLGATE), "test", str(ROOT / "examples" / "scenarios"), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    scenarios = report["scenarios"] if isinstance(report, dict) else report
    assert len(scenarios) == len(EXAMPLES)
    assert all(item["passed"] for item in scenarios)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("wrong_ended.yaml", "ended: expected customer-ended-call, got assistant-ended-call"),
        ("markup_leak.yaml", "never_said"),
        ("script_exhausted.yaml", "has no script entry"),
        ("unexpected_hangup_said.yaml", "was never said"),
    ],
)
def test_broken_expectations_fail(name: str, expected: str) -> None:
    result = run_scenario_file(FAILING / name)
    assert not result.passed
    assert any(expected in failure for failure in result.all_failures), result.all_failures


def test_failing_scenarios_exit_nonzero() -> None:
    proc = subprocess.run([str(CALLGATE), "test", str(FAILING)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "0 passed, 4 failed" in proc.stdout
