"""Action parsing, argument forms, tool schemas, pattern matching and the URL guard."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from callgate.swaig.actions import (
    BackToBackFunctions,
    ChangeContext,
    ContextSwitch,
    Hangup,
    Hold,
    PlaybackBg,
    Say,
    SetGlobalData,
    SetMetaData,
    Stop,
    StopPlaybackBg,
    Swml,
    ToggleFunctions,
    UnknownAction,
    UnsetGlobalData,
    UnsetMetaData,
    UserInput,
    WaitForUser,
    actions_to_json,
    parse_actions,
)
from callgate.swaig.arguments import parse_arguments
from callgate.swaig.fetch import split_credentials
from callgate.swaig.matching import matches
from callgate.swaig.schema import openai_parameters
from callgate.swaig.urlguard import refusal

DOC = {"version": "1.0.0", "sections": {"main": [{"connect": {"to": "+15550001111"}}]}}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"say": "Hello"}, [Say("Hello")]),
        ({"stop": "true"}, [Stop()]),
        ({"stop": False}, []),
        ({"hangup": True}, [Hangup()]),
        ({"SWML": DOC}, [Swml(DOC)]),
        ({"SWML": DOC, "transfer": "true"}, [Swml(DOC, transfer=True)]),
        ({"SWML": {**DOC, "transfer": "true"}}, [Swml(DOC, transfer=True)]),
        (
            {"SWML": '{"version": "1.0.0", "sections": {"main": []}}'},
            [Swml({"version": "1.0.0", "sections": {"main": []}})],
        ),
        ({"SWML": DOC, "stop": True}, [Swml(DOC), Stop()]),
        ({"stop": True, "say": "bye"}, [Stop(), Say("bye")]),
        ({"toggle_functions": {"active": "false", "function": "a"}}, [ToggleFunctions([("a", False)])]),
        (
            {"toggle_functions": [{"function": ["a", "b"]}, {"active": False, "function": "c"}]},
            [ToggleFunctions([("a", True), ("b", True), ("c", False)])],
        ),
        ({"set_meta_data": {"k": 1}}, [SetMetaData({"k": 1})]),
        ({"unset_meta_data": "k"}, [UnsetMetaData(["k"])]),
        ({"unset_meta_data": {"k": None, "j": 1}}, [UnsetMetaData(["k", "j"])]),
        ({"set_global_data": {"g": [1]}}, [SetGlobalData({"g": [1]})]),
        ({"unset_global_data": ["a", "b"]}, [UnsetGlobalData(["a", "b"])]),
        ({"context_switch": "New prompt"}, [ContextSwitch(system_prompt="New prompt")]),
        (
            {"context_switch": {"system_prompt": "S", "user_prompt": "U", "consolidate": "true"}},
            [ContextSwitch("S", "U", consolidate=True)],
        ),
        ({"user_input": "hi"}, [UserInput("hi")]),
        ({"playback_bg": "music.mp3"}, [PlaybackBg("music.mp3")]),
        ({"playback_bg": {"file": "m.wav", "wait": "true"}}, [PlaybackBg("m.wav", wait=True)]),
        ({"stop_playback_bg": True}, [StopPlaybackBg()]),
        ({"back_to_back_functions": "false"}, [BackToBackFunctions(False)]),
        ({"hold": 120}, [Hold(120)]),
        ({"hold": {"timeout": 5000}}, [Hold(900)]),
        ({"hold": {}}, [Hold(300)]),
        ({"wait_for_user": True}, [WaitForUser()]),
        ({"wait_for_user": "answer_first"}, [WaitForUser(answer_first=True)]),
        ({"change_context": "billing"}, [ChangeContext("billing")]),
    ],
)
def test_parse_actions(raw: dict[str, Any], expected: list[Any]) -> None:
    warnings: list[str] = []
    assert parse_actions([raw], warnings) == expected
    assert warnings == []


def test_parse_actions_round_trip_to_json() -> None:
    actions = parse_actions([{"say": "a"}, {"SWML": DOC, "transfer": True}, {"hold": 10}])
    assert actions_to_json(actions) == [{"say": "a"}, {"SWML": DOC, "transfer": "true"}, {"hold": 10}]


@pytest.mark.parametrize(
    "raw",
    [
        {"say": {"text": "not a string"}},
        {"stop": "maybe"},
        {"SWML": "not json"},
        {"SWML": ["a"]},
        {"toggle_functions": [{"active": True}]},
        {"set_meta_data": "k"},
        {"playback_bg": {"wait": True}},
        {"hold": "forever"},
        {"transfer": "true"},
        {"mystery": 1},
    ],
)
def test_bad_actions_become_warnings(raw: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    warnings: list[str] = []
    actions = parse_actions([raw, {"say": "still here"}], warnings)
    assert actions[-1] == Say("still here")
    assert warnings and "SWAIG" in caplog.text
    assert all(isinstance(a, UnknownAction) for a in actions[:-1])


def test_parse_actions_odd_containers() -> None:
    assert parse_actions(None) == []
    assert parse_actions({"say": "one"}) == [Say("one")]
    warnings: list[str] = []
    assert parse_actions(["text"], warnings) == [UnknownAction("", "text", reason="not an object")]
    assert warnings
    quiet: list[str] = []
    assert parse_actions([{"settings": {"temperature": 0.2}}], quiet) == [
        UnknownAction("settings", {"temperature": 0.2}, reason="quiet")
    ]
    assert quiet == []


@pytest.mark.parametrize(
    ("raw", "parsed", "substituted"),
    [
        ('{"a": 1}', [{"a": 1}], ""),
        ("", [], ""),
        ("not json", [], "not json"),
        ("[1, 2]", [], "[1, 2]"),
        ('Here you go: {"city": "Oslo"} thanks', [{"city": "Oslo"}], "Here you go:  thanks"),
        ('{broken {"ok": true}', [{"ok": True}], "{broken"),
    ],
)
def test_arguments(raw: str, parsed: list[Any], substituted: str) -> None:
    arguments = parse_arguments(raw)
    assert arguments.parsed == parsed
    assert arguments.substituted == substituted
    assert arguments.raw == raw
    assert arguments.args == (parsed[0] if parsed else {})


def test_openai_parameters() -> None:
    assert openai_parameters(None) == {"type": "object", "properties": {}}
    assert openai_parameters({"type": "string"}) == {"type": "object", "properties": {}}
    schema = {"properties": {"a": {"type": "string", "required": True}, "b": {"required": False}}}
    assert openai_parameters(schema) == {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {}},
        "required": ["a"],
    }
    assert schema["properties"]["a"] == {"type": "string", "required": True}  # input untouched


@pytest.mark.parametrize(
    ("pattern", "text", "hit"),
    [
        ("\\w+", "+1555", True),
        ("\\w+", "", False),
        ("\\\\w+", "sales", True),  # doubled escape from YAML converted from JSON
        ("trek", "Star TREK", True),  # plain patterns ignore case, as SignalWire does
        ("/trek/", "Star TREK", False),  # slashed: exactly the flags given
        ("/trek/i", "Star TREK", True),
        ("^a.b$", "a\nb", False),
        ("/^a.b$/s", "a\nb", True),
        ("/.*/", "", True),
    ],
)
def test_matches(pattern: str, text: str, hit: bool) -> None:
    assert matches(pattern, text) is hit


def test_bad_pattern_raises_re_error() -> None:
    with pytest.raises(re.error):
        matches("(", "x")
    with pytest.raises(re.error):
        matches("/a/q", "a")


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api.example.com/x", True),
        ("http://8.8.8.8/", True),
        ("http://127.0.0.1:8080/", False),
        ("http://localhost/", False),
        ("http://api.localhost/", False),
        ("http://10.1.2.3/", False),
        ("http://192.168.0.1/", False),
        ("http://169.254.169.254/latest/meta-data", False),
        ("http://[::1]/", False),
        ("http://[::ffff:127.0.0.1]/", False),
        ("http://0.0.0.0/", False),
        ("http://127.1/", False),
        ("http://2130706433/", False),
        ("http://0x7f000001/", False),
        ("ftp://example.com/", False),
        ("http:///nohost", False),
    ],
)
def test_url_guard(url: str, allowed: bool) -> None:
    assert (refusal(url) is None) is allowed
    if not allowed and url.startswith("http"):
        # The switch and the document's own host open it (a scheme or a missing host never).
        opened = refusal(url, allow_private=True) is None
        assert opened is ("//" in url and not url.startswith("http:///"))


def test_url_guard_document_host() -> None:
    assert refusal("http://10.0.0.5:9000/hook", document_host="10.0.0.5:9000") is None
    assert refusal("http://10.0.0.5/hook", document_host="10.0.0.6") is not None
    assert refusal("http://[fd00::1]/hook", document_host="[fd00::1]:8443") is None


def test_split_credentials() -> None:
    assert split_credentials("https://u:p%40ss@h.example:8443/x?y=1") == (
        "https://h.example:8443/x?y=1",
        split_credentials("https://u:p%40ss@h.example:8443/x?y=1")[1],
    )
    creds = split_credentials("https://u:p%40ss@h.example/x")[1]
    assert creds is not None and (creds.user, creds.password) == ("u", "p@ss")
    assert "p@ss" not in repr(creds)
    assert split_credentials("https://h.example/x") == ("https://h.example/x", None)


def test_render_tree_matches_expand_value_without_aliasing() -> None:
    from callgate.swaig.render import render_tree
    from callgate.swml.models import Output
    from callgate.template import expand_value

    output = Output.model_validate(
        {
            "action": [
                {"say": "Hi ${args.name}"},
                {"SWML": {"version": "1.0.0", "sections": {"main": [{"connect": {"to": "${meta_data.n}"}}]}}},
                {
                    "set_meta_data": {
                        "${lc:args.name}": "${meta_data.list}",
                        "n": 3,
                        "flag": True,
                        "none": None,
                    }
                },
            ]
        }
    )
    ctx = {"args": {"name": "Ann"}, "meta_data": {"n": "+1555", "list": [1, 2]}}
    first = render_tree(output, output.action, ctx)
    assert first == expand_value(output.action, ctx)
    assert first[2]["set_meta_data"] == {"ann": [1, 2], "n": 3, "flag": True, "none": None}
    first[1]["SWML"]["sections"]["main"].append("mutated")
    assert render_tree(output, output.action, ctx)[1]["SWML"]["sections"]["main"] == [
        {"connect": {"to": "+1555"}}
    ]
    assert output.action[1]["SWML"]["sections"]["main"] == [{"connect": {"to": "${meta_data.n}"}}]
    other = Output.model_validate({"action": [{"say": "Bye ${args.name}"}]})
    assert render_tree(other, other.action, ctx) == [{"say": "Bye Ann"}]
