"""The scenario format, version 1: every field of the documented example, and errors naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from callgate.scenario.format import (
    DEFAULT_MAX_DURATION,
    DtmfTurn,
    HangupTurn,
    Scenario,
    ScenarioError,
    UserTurn,
    WaitTurn,
    load_scenario,
    parse_scenario,
)

# The example of DESIGN §6, as a user writes it.
EXAMPLE = """\
name: caller says goodbye
agent: ../agents/frank.yaml          # path relative to this file, or an inline SWML document
call: {from: "+15551230000", to: "+15559870000", caller_name: Ann}
llm:
  - text: "Hi, this is Frank. How can I help?"
  - match: "have to go"
    text: 'Sure. <imsagent_hangup endword="Goodbye!"/>'
    chunk: 3
  - tool_calls: [{name: hangup, arguments: {}}]
    style: repeated
http:
  - {method: POST, url: "https://example.com/functions*", json: {response: "It is sunny."}, status: 200,
     delay: 0.1s}
passthrough: ["http://127.0.0.1:3000/*"]
legs:
  "+15550002222": {answer: true, after: 3s, turns: [{user: "Yes, put them through."}]}
  "sip:sales@example.com": {answer: busy}
turns:
  - user: "Hi there"
  - wait: 35s
  - dtmf: "1"
  - user: "I have to go"
  - hangup
expect:
  said: ["Hi, this is Frank", "Goodbye!"]
  never_said: ["imsagent", "<"]
  ended: assistant-ended-call
  last_said: "Goodbye!"
  transfer: {to: "+15550002222", mode: warm, result: completed}
  functions: [{name: transfer, arguments: {target: sales}}]
  http: [{method: POST, url: "https://example.com/post*", json: {action: post_conversation}}]
"""


@pytest.fixture
def scenario_dir(tmp_path: Path) -> Path:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "frank.yaml").write_text("version: 1.0.0\nsections: {main: []}\n")
    (tmp_path / "scenarios").mkdir()
    return tmp_path / "scenarios"


def write(folder: Path, text: str, name: str = "s.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def errors_of(data: Any) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, file="bad.yaml")
    return info.value.problems


BASE: dict[str, Any] = {"name": "n", "agent": {"version": "1.0.0", "sections": {"main": []}}}


def test_design_example_parses_every_field(scenario_dir: Path) -> None:
    scenario = load_scenario(write(scenario_dir, EXAMPLE))
    assert scenario.name == "caller says goodbye"
    assert scenario.agent == "../agents/frank.yaml" and not scenario.agent_is_url
    assert (scenario.call.from_number, scenario.call.to_number, scenario.call.caller_name) == (
        "+15551230000",
        "+15559870000",
        "Ann",
    )
    agent = scenario.script("agent")
    assert [e.text for e in agent][:2] == [
        "Hi, this is Frank. How can I help?",
        'Sure. <imsagent_hangup endword="Goodbye!"/>',
    ]
    assert agent[1].match == "have to go" and agent[1].chunk == 3
    assert agent[2].tool_calls[0].name == "hangup" and agent[2].style == "repeated"
    (stub,) = scenario.http
    assert (stub.method, stub.url, stub.status, stub.delay) == (
        "POST",
        "https://example.com/functions*",
        200,
        0.1,
    )
    assert stub.has_json and stub.json_body == {"response": "It is sunny."}
    assert scenario.passthrough == ["http://127.0.0.1:3000/*"]
    assert set(scenario.legs) == {"+15550002222", "sip:sales@example.com"}
    assert scenario.turns == [
        UserTurn(user="Hi there"),
        WaitTurn(wait=35.0),
        DtmfTurn(dtmf="1"),
        UserTurn(user="I have to go"),
        HangupTurn(),
    ]
    expect = scenario.expect
    assert expect.said == ["Hi, this is Frank", "Goodbye!"]
    assert expect.never_said == ["imsagent", "<"]
    assert expect.ended is not None and expect.ended.value == "assistant-ended-call"
    assert expect.last_said == "Goodbye!"
    assert [(t.to, t.mode, t.result) for t in expect.transfer] == [("+15550002222", "warm", "completed")]
    assert expect.functions[0].name == "transfer" and expect.functions[0].arguments == {"target": "sales"}
    assert expect.http[0].url == "https://example.com/post*" and expect.http[0].json_body == {
        "action": "post_conversation"
    }
    assert scenario.strict_http is False
    assert scenario.max_duration == DEFAULT_MAX_DURATION


def test_same_scenario_as_json(scenario_dir: Path) -> None:
    data = yaml.safe_load(EXAMPLE)
    scenario = load_scenario(write(scenario_dir, json.dumps(data), "s.json"))
    assert scenario.name == "caller says goodbye" and len(scenario.turns) == 5


def test_llm_map_by_role_and_defaults() -> None:
    scenario = parse_scenario(
        {
            **BASE,
            "llm": {"agent": [{"text": "Hi"}], "summary": [{"text": "S"}], "consult": [], "post_prompt": []},
            "turns": [{"hangup": True}, "hangup"],
            "strict_http": True,
            "max_duration": "2m",
        },
        file="x.yaml",
    )
    assert [e.text for e in scenario.script("summary")] == ["S"]
    assert scenario.script("agent")[0].text == "Hi" and scenario.script("consult") == []
    assert scenario.turns == [HangupTurn(), HangupTurn()]
    assert scenario.strict_http and scenario.max_duration == 120.0
    assert scenario.call.caller_name  # defaults exist


def test_name_defaults_to_file_stem(scenario_dir: Path) -> None:
    text = "agent: {version: 1.0.0, sections: {main: []}}\nturns: [hangup]\n"
    assert load_scenario(write(scenario_dir, text, "my_case.yaml")).name == "my_case"


def test_agent_url_and_inline() -> None:
    scenario = parse_scenario({**BASE, "agent": "https://agents.example.com/frank"}, file="x")
    assert scenario.agent_is_url
    assert isinstance(parse_scenario(BASE, file="x").agent, dict)


def test_leg_turns_parse_like_the_callers() -> None:
    scenario = parse_scenario({**BASE, "legs": {"+1555": {"turns": [{"user": "Yes."}, "hangup"]}}}, file="x")
    assert scenario.leg_turns("+1555") == [UserTurn(user="Yes."), HangupTurn()]


def test_dtmf_number_becomes_digits() -> None:
    scenario = parse_scenario({**BASE, "turns": [{"dtmf": 12}, {"dtmf": "*#"}]}, file="x")
    assert scenario.turns == [DtmfTurn(dtmf="12"), DtmfTurn(dtmf="*#")]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({**BASE, "colour": "red"}, "unknown field 'colour'"),
        ({**BASE, "call": {"from": "+1", "phone": "x"}}, "call: unknown field 'phone'"),
        ({**BASE, "http": [{"url": "x", "jsn": {}}]}, "http[0]: unknown field 'jsn'"),
        (
            {**BASE, "http": [{"url": "x", "json": {}, "body": "b"}]},
            "http[0]: give either json or body, not both",
        ),
        ({**BASE, "http": [{"url": "x", "delay": "soon"}]}, "http[0].delay: not a duration: 'soon'"),
        ({**BASE, "http": [{"url": "x", "status": 42}]}, "http[0].status"),
        ({**BASE, "expect": {"sayd": ["x"]}}, "expect: unknown field 'sayd'"),
        ({**BASE, "expect": {"ended": "gone"}}, "expect.ended"),
        ({**BASE, "expect": {"transfer": {"to": "x", "mode": "lukewarm"}}}, "expect.transfer[0].mode"),
        ({**BASE, "expect": {"functions": [{"arguments": {}}]}}, "expect.functions[0].name: Field required"),
        ({**BASE, "llm": [{"txt": "hi"}]}, "llm.agent[0]: unknown field 'txt'"),
        ({**BASE, "llm": {"boss": []}}, "llm: unknown llm role 'boss'"),
        ({**BASE, "turns": [{"wait": "forever"}]}, "turns[0].wait: not a duration: 'forever'"),
        ({**BASE, "turns": [{"say": "hi"}]}, "turns[0]: unknown turn 'say'"),
        ({**BASE, "turns": ["hello"]}, "turns[0]: expected one of"),
        ({**BASE, "turns": [{"user": "a", "wait": 1}]}, "turns[0]: expected one of"),
        ({**BASE, "turns": [{"dtmf": "12x"}]}, "turns[0].dtmf: DTMF digits must be"),
        ({**BASE, "turns": [{"hangup": False}]}, "turns[0].hangup"),
        ({**BASE, "max_duration": -1}, "max_duration"),
        ({**BASE, "strict_http": "maybe"}, "strict_http: Input should be a valid boolean"),
        ({**BASE, "agent": 5}, "agent: must be a path, a URL or an inline SWML document"),
        ({**BASE, "llm": "hello"}, "llm: must be a list of script entries"),
        ({**BASE, "legs": {"+1555": {"answer": "maybe"}}}, "legs.+1555.answer: answer must be"),
        ({**BASE, "legs": {"+1555": {"ring": 1}}}, "legs.+1555: unknown field 'ring'"),
        ({**BASE, "legs": {"+1555": {"turns": [{"say": "x"}]}}}, "legs.+1555.turns[0]: unknown turn 'say'"),
        ({"name": "n", "turns": []}, "agent: Field required"),
        ({**BASE, "agent": ""}, "agent: must be"),
    ],
)
def test_bad_fields_are_named(data: dict[str, Any], expected: str) -> None:
    problems = errors_of(data)
    assert any(p.startswith(expected) for p in problems), problems


def test_error_names_the_file(scenario_dir: Path) -> None:
    path = write(scenario_dir, "agent: {}\nturns: [{wait: never}]\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}: turns[0].wait")


def test_errors_carry_the_line(scenario_dir: Path) -> None:
    text = """\
name: lines
agent: ../agents/frank.yaml
turns:
  - user: hi
  - wait: soon
  - dance: yes
expect:
  said: [a]
  colour: red
"""
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(scenario_dir, text))
    assert info.value.problems == [
        "turns[1].wait: not a duration: 'soon' (write e.g. 3s, 1.5s, 500ms, 2m, 1h30m) (line 5)",
        "expect: unknown field 'colour' (line 9)",
    ]


def test_missing_agent_file_is_named(scenario_dir: Path) -> None:
    with pytest.raises(ScenarioError, match=r"agent: file not found: \.\./agents/nobody\.yaml"):
        load_scenario(write(scenario_dir, "agent: ../agents/nobody.yaml\nturns: []\n"))


def test_malformed_yaml_and_json_and_non_mapping(scenario_dir: Path) -> None:
    with pytest.raises(ScenarioError, match=r"invalid YAML at line \d+, column \d+"):
        load_scenario(write(scenario_dir, "agent: x\nturns: [\n  - {user: 'a'\n"))
    with pytest.raises(ScenarioError, match=r"invalid JSON at line 1"):
        load_scenario(write(scenario_dir, "{agent: x}", "s.json"))
    with pytest.raises(ScenarioError, match=r"must be a mapping, got list"):
        load_scenario(write(scenario_dir, "- a\n- b\n"))
    with pytest.raises(ScenarioError, match=r"cannot read"):
        load_scenario(scenario_dir / "missing.yaml")


def test_scenario_is_immutable() -> None:
    scenario = parse_scenario(BASE, file="x")
    with pytest.raises(ValueError):
        scenario.name = "other"  # type: ignore[misc]
    assert isinstance(scenario, Scenario)


def test_unquoted_phone_number_gets_a_hint() -> None:
    problems = errors_of(yaml.safe_load("name: n\nagent: {}\ncall: {from: +15551230000}\n"))
    assert problems == [
        'call.from: write phone numbers in quotes ("+15551230000"); YAML read 15551230000 as a number'
    ]
