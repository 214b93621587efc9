"""The runner's wiring (scripted model server, stubbed HTTP, sim legs, checks), discovery and the command.

The engine is the FakeEngine test double; everything else is real: the model server on loopback,
the stub transport, the sim channel, virtual time.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from callgate.scenario.command import run_tests
from callgate.scenario.runner import discover, run_scenario_file

from .fake_engine import FakeFactory

AGENT = "version: 1.0.0\nsections:\n  main:\n    - ai: {prompt: {text: hi}}\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "agent.yaml").write_text(AGENT)
    return tmp_path


def scenario(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("agent: agent.yaml\nmax_duration: 30s\n" + body)
    return path


def test_scripted_words_reach_the_caller_and_the_scenario_passes(folder: Path) -> None:
    path = scenario(
        folder,
        "greets.yaml",
        """
name: greets and answers
llm:
  - text: "Hi from the script."
  - text: "Sure thing."
turns:
  - user: "hello"
expect:
  said: ["Hi from the script.", "Sure thing."]
  ended: customer-ended-call
  last_said: "Sure thing."
""",
    )
    factory = FakeFactory()
    result = run_scenario_file(path, factory=factory)
    assert result.failures == [] and result.error is None and result.passed
    assert result.name == "greets and answers"
    assert result.duration == pytest.approx(30.0)  # the caller hung up at max_duration
    assert result.outcome is not None
    assert [e.kind for e in result.outcome.timeline.events][:2] == ["answered", "say"]
    (seen,) = factory.seen
    assert seen["agent_source"] == "agent.yaml" and seen["base_dir"] == folder.resolve()
    assert (seen["call"].from_number, seen["call"].caller_name) == ("+15550000001", "Caller")


def test_a_request_past_the_script_fails_the_scenario(folder: Path) -> None:
    path = scenario(
        folder,
        "short.yaml",
        """
llm:
  - text: "Only this."
turns:
  - user: "hello"
expect:
  said: ["Only this."]
""",
    )
    result = run_scenario_file(path, factory=FakeFactory())
    assert not result.passed
    assert result.failures == ["model request 2 of the caller's agent has no script entry"]


def test_http_stubs_are_used_and_checked(folder: Path) -> None:
    path = scenario(
        folder,
        "weather.yaml",
        """
llm: [{text: "Hello."}]
http:
  - {method: POST, url: "https://example.com/functions*", json: {response: "It is sunny."}, delay: 2s}
turns:
  - user: "weather please"
expect:
  said: ["It is sunny."]
  functions: [{name: get_weather, arguments: {q: "weather please"}}]
  http: [{method: POST, url: "https://example.com/func*", json: {function: get_weather}}]
""",
    )
    result = run_scenario_file(path, factory=FakeFactory(webhook="https://example.com/functions?x=1"))
    assert result.failures == []
    assert result.outcome is not None
    (exchange,) = result.outcome.http
    assert exchange.stubbed and exchange.status == 200
    said = [u for u in result.outcome.utterances if u.text == "It is sunny."]
    assert said[0].start == pytest.approx(0.4 + 2.0)  # "Hello." then the stub's 2 s delay


def test_unstubbed_request_fails_only_with_strict_http(folder: Path) -> None:
    body = """
llm: [{text: "Hello."}]
turns:
  - user: "weather please"
"""
    lenient = run_scenario_file(
        scenario(folder, "a.yaml", body), factory=FakeFactory(webhook="https://x.test/f")
    )
    assert lenient.passed
    assert lenient.outcome is not None and lenient.outcome.http[0].status == 404
    assert [e.kind for e in lenient.outcome.timeline.events if e.kind.startswith("http")] == [
        "http-unmatched"
    ]
    strict = run_scenario_file(
        scenario(folder, "b.yaml", body + "strict_http: true\n"),
        factory=FakeFactory(webhook="https://x.test/f"),
    )
    assert strict.failures == ["http: no stub for POST https://x.test/f (strict_http)"]


def test_expectation_failures_are_reported(folder: Path) -> None:
    path = scenario(
        folder,
        "wrong.yaml",
        """
llm: [{text: "Hello."}, {text: "Goodbye!"}]
turns: [{user: "bye"}]
expect:
  ended: silence-timed-out
  never_said: ["Goodbye"]
""",
    )
    result = run_scenario_file(path, factory=FakeFactory())
    assert result.failures[0] == "never_said: 'Goodbye' was said: …Hello. Goodbye!…"
    assert result.failures[1] == "ended: expected silence-timed-out, got assistant-ended-call"


def test_an_engine_crash_is_a_failed_scenario_with_its_timeline(folder: Path) -> None:
    path = scenario(folder, "crash.yaml", "llm: [{text: Hi}]\nturns: [{user: hello}]\n")
    result = run_scenario_file(path, factory=FakeFactory(fail_idle=True))
    assert not result.passed and not result.malformed
    assert result.error == "the call crashed: RuntimeError: engine exploded"
    assert result.outcome is not None and result.outcome.ended_reason == "scenario-crashed"
    assert "crash" in [e.kind for e in result.outcome.timeline.events]


def test_stuck_post_call_work_ends_the_scenario(folder: Path) -> None:
    path = scenario(folder, "stuck.yaml", "llm: [{text: Hi}]\nturns: [hangup]\n")
    result = run_scenario_file(path, factory=FakeFactory(stuck_finish=True))
    assert result.error == "the call crashed: RuntimeError: post-call work did not finish within 3600s"
    assert result.outcome is not None and result.outcome.transcript() == "Hi"


def test_a_malformed_scenario_is_a_failed_result(folder: Path) -> None:
    path = scenario(folder, "bad.yaml", "turns: [{shout: hi}]\n")
    result = run_scenario_file(path, factory=FakeFactory())
    assert result.malformed and not result.passed
    assert result.error == (
        "turns[0]: unknown turn 'shout' (expected user, barge, wait, dtmf or hangup) (line 3)"
    )


# ---------------------------------------------------------------- discovery


def test_discover_files_and_folders(folder: Path) -> None:
    good = scenario(folder, "one.yaml", "turns: [hangup]\n")
    nested = folder / "deeper"
    nested.mkdir()
    (nested / "two.json").write_text(json.dumps({"agent": "../agent.yaml", "expect": {}}))
    (nested / "broken.yml").write_text("agent: x\nturns: [\n")
    (nested / "data.json").write_text(json.dumps({"turns": []}))  # no agent: not a scenario
    (nested / "notes.txt").write_text("agent: x\nturns: []\n")
    found = discover([folder])
    assert found == [nested / "broken.yml", nested / "two.json", good]
    # A file given by name is always taken, whatever it holds; duplicates collapse.
    assert discover([folder / "agent.yaml", folder / "agent.yaml"]) == [folder / "agent.yaml"]
    with pytest.raises(FileNotFoundError):
        discover([folder / "missing.yaml"])


# ---------------------------------------------------------------- the command


def command(paths: list[Path], *, json_output: bool = False) -> tuple[int, str]:
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, color_system=None)
    code = run_tests(paths, json_output=json_output, console=console, factory=FakeFactory())
    return code, buffer.getvalue()


PASSING = "llm: [{text: Hi}]\nturns: [hangup]\nexpect: {said: [Hi], ended: customer-ended-call}\n"
FAILING = "llm: [{text: Hi}]\nturns: [hangup]\nexpect: {said: [Bye]}\n"


def test_command_exit_codes(folder: Path) -> None:
    ok = scenario(folder, "ok.yaml", PASSING)
    code, text = command([ok])
    assert code == 0 and text.splitlines()[-1] == "1 passed, 0 failed"
    bad = scenario(folder, "fails.yaml", FAILING)
    code, text = command([ok, bad])
    assert code == 1 and text.splitlines()[-1] == "1 passed, 1 failed"
    assert "✗ fails" in text and "said: 'Bye' was never said" in text
    malformed = scenario(folder, "malformed.yaml", "expect: {sayd: [x]}\n")
    code, text = command([ok, malformed])
    assert code == 2 and "expect: unknown field 'sayd'" in text
    assert text.splitlines()[-1] == "1 passed, 1 failed"


def test_command_bad_paths(folder: Path) -> None:
    code, text = command([folder / "nope.yaml"])
    assert code == 2 and "no such file or folder" in text
    empty = folder / "empty"
    empty.mkdir()
    code, text = command([empty])
    assert code == 2 and "no scenario files found" in text


def test_command_json_report(folder: Path) -> None:
    ok = scenario(folder, "ok.yaml", PASSING)
    bad = scenario(folder, "fails.yaml", FAILING)
    code, text = command([ok, bad], json_output=True)
    assert code == 1
    report = json.loads(text)
    assert [(r["name"], r["passed"]) for r in report] == [("ok", True), ("fails", False)]
    assert report[0]["ended_reason"] == "customer-ended-call" and report[0]["transcript"] == "Hi"
    assert report[1]["failures"][0].startswith("said: 'Bye' was never said")
    assert any(e["kind"] == "remote-hangup" for e in report[0]["timeline"])
    code, text = command([folder / "nope.yaml"], json_output=True)
    assert code == 2 and json.loads(text) == []


def test_engine_gets_the_passthrough_check(folder: Path) -> None:
    path = scenario(
        folder, "pt.yaml", 'passthrough: ["http://127.0.0.1:3000/*"]\nllm: [{text: Hi}]\nturns: [hangup]\n'
    )
    factory = FakeFactory()
    assert run_scenario_file(path, factory=factory).passed
    exempt = factory.seen[0]["guard_exempt"]
    assert exempt("http://127.0.0.1:3000/hook") is True
    assert exempt("http://127.0.0.1:3001/hook") is False
