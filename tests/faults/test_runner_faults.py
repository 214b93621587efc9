"""Bad scenario files and misbehaving peers in `callgate test` (issue 10, item 11), against the real
CLI: an `agent:` URL that never answers or never stops answering, scenario files nested absurdly
deep, an inline agent that is a YAML alias bomb, and a stubbed request the engine gives up on.

One bad file is exit 2 for that file with a clear message; the other files still run and report.
Every run has a timeout: a hang fails the test instead of blocking it."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from callgate.telephony.clock import RealTimeLimit, VirtualClock, run_virtual

from .misbehaving import MisbehavingServer
from .security_support import run_cli

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

GOOD = textwrap.dedent(
    """\
    name: a good scenario runs next to a bad one
    agent:
      sections:
        main:
          - ai: {prompt: {text: "You are Frank."}}
    llm:
      - text: 'Hi. <imsagent_hangup endword="Bye."/>'
    turns: []
    expect: {said: ["Hi.", "Bye."], ended: assistant-ended-call}
    """
)


def _run(paths: list[Path], timeout: float = 180) -> tuple[Any, list[dict[str, Any]]]:
    result = run_cli(["test", "--json", *(str(p) for p in paths)], timeout=timeout)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result, json.loads(result.stdout)


def _by_file(report: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {Path(entry["file"]).name: entry for entry in report}


def _with_good(tmp_path: Path, bad_name: str, bad_text: str) -> list[Path]:
    good, bad = tmp_path / "good.yaml", tmp_path / bad_name
    good.write_text(GOOD)
    bad.write_text(bad_text)
    return [bad, good]


def _one_bad_file(paths: list[Path], bad_name: str) -> str:
    """Run `paths`: exit 2, the good scenario still passed; what the bad one reported."""
    result, report = _run(paths)
    assert result.returncode == EXIT_BAD_INPUT
    entries = _by_file(report)
    assert entries["good.yaml"]["passed"] is True
    assert entries[bad_name]["passed"] is False
    return "\n".join(entries[bad_name]["failures"])


def _url_scenario(url: str) -> str:
    return f"agent: {url}\nllm: [{{text: Hi.}}]\nturns: []\nexpect: {{said: [Hi.]}}\n"


def test_an_agent_url_that_never_answers_fails_its_scenario_and_the_run_goes_on(tmp_path: Path) -> None:
    with MisbehavingServer() as server:
        paths = _with_good(tmp_path, "silent.yaml", _url_scenario(server.url("/silent")))
        failures = _one_bad_file(paths, "silent.yaml")
    assert "no complete answer within 10 s" in failures
    assert server.hits["/silent"] == 1


def test_an_agent_url_with_an_endless_body_stops_at_the_size_cap(tmp_path: Path) -> None:
    with MisbehavingServer() as server:
        paths = _with_good(tmp_path, "endless.yaml", _url_scenario(server.url("/endless")))
        failures = _one_bad_file(paths, "endless.yaml")
    assert "larger than the 1000000-byte limit" in failures


def _nested(levels: int) -> Any:
    value: Any = "deep"
    for _ in range(levels):
        value = {"k": value}
    return value


def _deep_yaml(levels: int) -> str:
    body = textwrap.indent("".join("  " * i + "k:\n" for i in range(levels)), "      ")
    return f"agent: agent.yaml\nturns: []\nexpect:\n  said: []\nllm:\n  - text: hi\n    extra:\n{body}"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.yaml", _deep_yaml(400)),
        ("deep100.yaml", _deep_yaml(100)),
        ("deep_flow.yaml", "agent: agent.yaml\nturns: " + "[" * 5000 + "]" * 5000 + "\n"),
        ("deep.json", '{"agent": "agent.yaml", "turns": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        ("deeper.json", json.dumps({"agent": "agent.yaml", "turns": [], "expect": {"x": _nested(500)}})),
    ],
)
def test_a_deeply_nested_scenario_file_is_one_bad_file(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / "agent.yaml").write_text("sections: {main: [{ai: {prompt: {text: hi}}}]}\n")
    paths = _with_good(tmp_path, name, text)
    # Given by name, and found in a folder: discovery must not choke on it either.
    assert "nested more than 65 levels deep" in _one_bad_file(paths, name)
    assert "nested more than 65 levels deep" in _one_bad_file([tmp_path], name)


def test_an_inline_agent_that_is_an_alias_bomb_is_refused(tmp_path: Path) -> None:
    bomb = ["anchors:", "  a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        bomb.append(f"  {chr(97 + level)}: &{chr(97 + level)} [{', '.join(['*' + chr(96 + level)] * 10)}]")
    text = "\n".join(bomb) + textwrap.dedent(
        """
        agent:
          sections:
            main:
              - ai:
                  prompt: {text: hi}
                  global_data: {x: *i}
        llm: [{text: hi}]
        turns: []
        expect: {said: [hi]}
        """
    )
    paths = _with_good(tmp_path, "bomb.yaml", text)
    result, report = _run(paths)
    assert result.returncode == EXIT_BAD_INPUT
    entries = _by_file(report)
    assert entries["good.yaml"]["passed"] is True
    assert any(
        "expands to more than 200000 values (YAML aliases)" in f for f in entries["bomb.yaml"]["failures"]
    )


def test_a_stubbed_request_the_engine_gives_up_on_is_still_recorded(tmp_path: Path) -> None:
    scenario = tmp_path / "slow_stub.yaml"
    scenario.write_text(
        textwrap.dedent(
            """\
            name: a webhook stub slower than the webhook timeout is still a request that was made
            agent:
              sections:
                main:
                  - ai:
                      prompt: {text: "You check the weather."}
                      SWAIG:
                        functions:
                          - function: get_weather
                            description: The weather
                            parameters: {type: object, properties: {city: {type: string}}}
                            web_hook_url: https://weather.example.com/swaig
            llm:
              - tool_calls: [{name: get_weather, arguments: {city: Oslo}}]
              - text: 'No luck. <imsagent_hangup endword="Bye."/>'
            http:
              - {method: POST, url: "https://weather.example.com/swaig", json: {response: sunny}, delay: 60s}
            turns: []
            expect:
              said: ["No luck."]
              http:
                - method: POST
                  url: "https://weather.example.com/swaig"
                  json: {argument: {parsed: [{city: Oslo}]}}
            """
        )
    )
    result, report = _run([scenario])
    (entry,) = report
    assert result.returncode == 0, entry
    (exchange,) = [e for e in entry["http"] if "weather" in e["url"]]
    assert exchange["status"] is None  # never answered: the engine gave up first
    kinds = [event["kind"] for event in entry["timeline"]]
    assert "http-abandoned" in kinds


def test_a_real_time_limit_fires_while_virtual_time_is_held() -> None:
    """What bounds the `agent:` URL and passthrough requests: the loop's own timers stand still while
    time is held, so only a limit counted in real seconds ends work that never finishes."""

    async def main(clock: VirtualClock) -> tuple[bool, float]:
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timed_out = False
        with clock.hold():
            try:
                async with RealTimeLimit(0.5).running():
                    await never
            except TimeoutError:
                timed_out = True
        # Not held: a long virtual sleep inside a real-time limit takes no real time and is not cut.
        async with RealTimeLimit(30).running():
            await clock.sleep(3600)
        await asyncio.sleep(0)  # no stray cancellation arrives after the block
        return timed_out, clock.monotonic()

    timed_out, now = run_virtual(main)
    assert timed_out
    assert now >= 3600
