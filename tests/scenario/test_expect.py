"""Expectations against hand-built call outcomes: each kind, passing and failing."""

from __future__ import annotations

from typing import Any

import pytest

from callgate.scenario.expect import check, is_subset
from callgate.scenario.format import Expect
from callgate.timeline import CallOutcome, FunctionCallRecord, HttpExchange, TransferRecord, Utterance


def outcome(*texts: str, hangup_at: float | None = 10.0, ended: str = "assistant-ended-call") -> CallOutcome:
    """Utterances one second long, back to back, on the caller's leg."""
    utterances = [Utterance(text=t, start=float(i), end=float(i) + 1.0) for i, t in enumerate(texts)]
    return CallOutcome(ended_reason=ended, hangup_at=hangup_at, utterances=utterances)


def expect(**fields: Any) -> Expect:
    return Expect.model_validate(fields)


def test_empty_expect_passes_and_recorded_failures_fail() -> None:
    result = outcome("Hello")
    assert check(expect(), result) == []
    result.failures.append("llm: agent request 2 has no script entry")
    assert check(expect(), result) == ["llm: agent request 2 has no script entry"]


def test_said_in_order_across_utterances() -> None:
    result = outcome("Hi, this is Frank.", "How can I help?", "Goodbye!")
    assert check(expect(said=["Hi, this is Frank", "help", "Goodbye!"]), result) == []
    # An entry may span two utterances: the transcript is one running text.
    assert check(expect(said=["Frank. How can"]), result) == []


def test_said_out_of_order_fails_with_reason() -> None:
    result = outcome("Goodbye!", "Hi, this is Frank.")
    failures = check(expect(said=["Hi, this is Frank", "Goodbye!"]), result)
    assert failures == ["said: 'Goodbye!' was said, but not after 'Hi, this is Frank'"]


def test_said_missing_entry_fails() -> None:
    failures = check(expect(said=["Bonjour"]), outcome("Hello"))
    assert len(failures) == 1 and failures[0].startswith("said: 'Bonjour' was never said")


def test_said_searches_after_previous_match_for_repeats() -> None:
    result = outcome("Sorry?", "Okay.")
    assert check(expect(said=["Sorry?", "Sorry?"]), result) != []
    assert check(expect(said=["Sorry?", "Okay."]), outcome("Sorry?", "Sorry?", "Okay.")) == []


def test_said_ignores_other_legs() -> None:
    result = outcome("Hello")
    result.utterances.append(Utterance(text="Supervisor briefing", start=2, end=3, leg="supervisor"))
    assert check(expect(said=["Supervisor briefing"]), result) != []


def test_never_said() -> None:
    assert check(expect(never_said=["imsagent", "<"]), outcome("Sure. Goodbye!")) == []
    failures = check(expect(never_said=["imsagent", "<"]), outcome('Sure <imsagent_hangup endword="x"/>'))
    assert len(failures) == 2
    assert all(f.startswith("never_said:") for f in failures)


def test_ended() -> None:
    assert check(expect(ended="assistant-ended-call"), outcome("Bye")) == []
    failures = check(expect(ended="silence-timed-out"), outcome("Bye"))
    assert failures == ["ended: expected silence-timed-out, got assistant-ended-call"]


def test_ended_rejects_unknown_reason() -> None:
    with pytest.raises(ValueError, match="ended"):
        expect(ended="caller-left")


def test_last_said_passes_when_goodbye_played_before_hangup() -> None:
    result = outcome("Sure.", "Goodbye!", hangup_at=2.0)
    assert check(expect(last_said="Goodbye!"), result) == []
    # Trailing whitespace on either side is ignored; punctuation is not.
    assert check(expect(last_said="Goodbye!  "), outcome("Sure.", "Goodbye! ", hangup_at=2.0)) == []
    assert check(expect(last_said="Goodbye"), result) != []


def test_last_said_fails_when_cut_off() -> None:
    result = outcome("Sure.", "Goodbye!", hangup_at=1.5)
    failures = check(expect(last_said="Goodbye!"), result)
    assert len(failures) == 1 and "cut off" in failures[0]


def test_last_said_ignores_speech_after_the_hangup_and_needs_a_hangup() -> None:
    result = outcome("Goodbye!", "Late words", hangup_at=1.0)
    result.utterances[1] = Utterance(text="Late words", start=1.5, end=2.5)
    assert check(expect(last_said="Goodbye!"), result) == []
    failures = check(expect(last_said="Goodbye!"), outcome("Goodbye!", hangup_at=None))
    assert failures and "never hung up" in failures[0]


def test_last_said_fails_when_something_else_came_last() -> None:
    failures = check(expect(last_said="Goodbye!"), outcome("Goodbye!", "Anything else?", hangup_at=5))
    assert len(failures) == 1 and "Anything else?" in failures[0]


def test_transfer_matches_given_fields_only() -> None:
    result = outcome("One moment")
    result.transfers = [
        TransferRecord(to="sip:sales@example.com", mode="blind", result="failed", reason="busy"),
        TransferRecord(to="+15550002222", mode="warm", result="completed"),
    ]
    good = {"to": "+15550002222", "mode": "warm", "result": "completed"}
    assert check(expect(transfer=good), result) == []
    assert check(expect(transfer={"result": "failed", "reason": "busy"}), result) == []
    assert check(expect(transfer=[{"mode": "blind"}, {"mode": "warm"}]), result) == []
    failures = check(expect(transfer={"to": "+15550002222", "mode": "blind"}), result)
    assert len(failures) == 1 and failures[0].startswith("transfer: none matched")


def test_transfer_fails_when_none_happened() -> None:
    failures = check(expect(transfer={"result": "completed"}), outcome("Hi"))
    assert failures and "no transfer happened" in failures[0]


def test_functions_subset_of_arguments() -> None:
    result = outcome("Hi")
    result.functions = [
        FunctionCallRecord(name="get_weather", arguments={"city": "Paris", "units": {"t": "C", "w": "kmh"}}),
        FunctionCallRecord(name="transfer", arguments={"target": "sales"}),
    ]
    assert check(expect(functions=[{"name": "transfer", "arguments": {"target": "sales"}}]), result) == []
    assert (
        check(expect(functions=[{"name": "get_weather", "arguments": {"units": {"t": "C"}}}]), result) == []
    )
    assert check(expect(functions=[{"name": "get_weather"}]), result) == []
    wrong = check(expect(functions=[{"name": "transfer", "arguments": {"target": "support"}}]), result)
    assert len(wrong) == 1 and "no transfer call had arguments" in wrong[0]
    missing = check(expect(functions=[{"name": "hangup"}]), result)
    assert missing == ["functions: hangup was never called (called: get_weather, transfer)"]


def test_http_expectation_by_method_glob_and_json_subset() -> None:
    result = outcome("Hi")
    result.http = [
        HttpExchange(
            method="POST", url="https://example.com/post_prompt?x=1", json={"action": "post_conversation"}
        ),
        HttpExchange(method="GET", url="https://example.com/status", status=404, stubbed=False),
    ]
    wanted = {"method": "POST", "url": "https://example.com/post*", "json": {"action": "post_conversation"}}
    assert check(expect(http=[wanted]), result) == []
    assert check(expect(http=[{"url": "https://example.com/status"}]), result) == []
    assert check(expect(http=[{"method": "post", "url": "https://example.com/status"}]), result) != []
    wrong_json = check(expect(http=[{**wanted, "json": {"action": "other"}}]), result)
    assert len(wrong_json) == 1 and "matching URL" in wrong_json[0]
    nothing = check(expect(http=[{"url": "https://elsewhere.test/*"}]), result)
    assert len(nothing) == 1 and nothing[0].startswith("http: no request to * https://elsewhere.test/*")


@pytest.mark.parametrize(
    ("wanted", "actual", "matches"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),
        ({"a": {"b": [1, {"c": 3}]}}, {"a": {"b": [1, {"c": 3, "d": 4}]}}, True),
        ({"a": [1]}, {"a": [1, 2]}, False),
        ({"a": 1}, {"b": 1}, False),
        ({"a": True}, {"a": 1}, False),
        ({"a": 1}, {"a": True}, False),
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": None}, {"a": None}, True),
        ({"a": {}}, {"a": "text"}, False),
        ("x", "x", True),
    ],
)
def test_is_subset(wanted: Any, actual: Any, matches: bool) -> None:
    assert is_subset(wanted, actual) is matches
