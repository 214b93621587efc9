"""SignalWire's `@{name arguments}` template functions (docs: swml/reference/template-functions):
strftime_tz, fmt_ph, expr, echo, separate, sleep — each with its output and its bad input."""

from __future__ import annotations

from typing import Any

import pytest

from callgate.template import TemplateEnv, expand, expand_url, expand_value, with_env
from callgate.template.functions import MAX_SLEEP_SECONDS

# 2025-01-15 14:30:45 UTC, a Wednesday.
NOW = 1736951445.0

CALL = {
    "call": {"from": "+12025551234", "to": "+442076792000"},
    "args": {"code": "ABC123", "input": "debug me", "n": "12", "x": "a b/c?d", "word": "sales"},
}


def _ctx(now: float | None = NOW) -> tuple[dict[str, Any], TemplateEnv]:
    env = TemplateEnv(now=now)
    return with_env(CALL, env), env


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("@{strftime_tz America/Chicago %Y-%m-%d %H:%M:%S}", "2025-01-15 08:30:45"),
        ("@{strftime_tz UTC %H:%M:%S}", "14:30:45"),
        ("@{strftime_tz America/Chicago %I:%M %p}", "08:30 AM"),
        ("@{strftime_tz Europe/London %A, %B %d, %Y}", "Wednesday, January 15, 2025"),
        ("@{strftime_tz america/chicago %H}", "08"),  # the zone's key in any case
        ("@{strftime_tz Mars/Olympus %H:%M}", ""),  # unknown zone
        ("@{strftime_tz ../../etc/passwd %H}", ""),  # not a zone key
        ("@{strftime_tz UTC}", ""),  # no format
        ("at @{strftime_tz UTC %H:%M} today", "at 14:30 today"),
    ],
)
def test_strftime_tz_uses_the_calls_clock(template: str, expected: str) -> None:
    ctx, _ = _ctx()
    assert expand(template, ctx) == expected


def test_strftime_tz_without_a_clock_is_empty_never_the_machines_time() -> None:
    assert expand("[@{strftime_tz UTC %Y}]", CALL) == "[]"
    ctx, _ = _ctx(now=None)
    assert expand("[@{strftime_tz UTC %Y}]", ctx) == "[]"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("@{fmt_ph international ${call.from}}", "+1 202-555-1234"),
        ("@{fmt_ph national ${call.from}}", "(202) 555-1234"),
        ("@{fmt_ph e164 ${call.from}}", "+12025551234"),
        ("@{fmt_ph RFC3966 ${call.from}}", "tel:+1-202-555-1234"),
        ("@{fmt_ph ${call.from}}", "(202) 555-1234"),  # no format: national
        ("@{fmt_ph national:sep:- ${call.from}}", "202-555-1234"),
        ("@{fmt_ph international:sep:, ${call.from}}", "+1,202,555,1234"),
        ("@{fmt_ph international ${call.to}}", "+44 20 7679 2000"),
        ("@{fmt_ph national ${call.to}}", "020 7679 2000"),
        ("@{fmt_ph international ${args.word}}", "sales"),  # not a number: as it is
        ("@{fmt_ph national:sep:- ${args.word}}", "sales"),
        ("@{fmt_ph international ${args.missing}}", ""),
    ],
)
def test_fmt_ph(template: str, expected: str) -> None:
    ctx, _ = _ctx()
    assert expand(template, ctx) == expected


def test_prefix_fmt_ph_keeps_its_meaning_and_gains_the_other_formats() -> None:
    ctx, _ = _ctx()
    assert expand("${fmt_ph:international:call.from}", ctx) == "+12025551234"
    assert expand("${fmt_ph:e164:call.from}", ctx) == "+12025551234"
    assert expand("${fmt_ph:rfc3966:call.from}", ctx) == "tel:+1-202-555-1234"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("The discount is @{expr (100 - 25) / 5} dollars", "The discount is 15 dollars"),
        ("@{expr 7 / 2}", "3.5"),
        ("@{expr 2 * (3 + 4) - -1}", "15"),
        ("@{expr 1 / 3}", "0.333333333333333"),
        ("@{expr 0.1 + 0.2}", "0.3"),
        ("@{expr ${args.n} * 2}", "24"),  # a nested value is text by the time expr reads it
        ("@{expr 1 / 0}", ""),
        ("@{expr 2 * (3}", ""),
        ("@{expr 2 3}", ""),
        ("@{expr price * 2}", ""),  # no names
        ("@{expr __import__('os')}", ""),
        ("@{expr " + "(" * 200 + "1" + ")" * 200 + "}", ""),  # too deep
        ("@{expr " + "1+" * 200 + "1}", ""),  # too long
        ("@{expr }", ""),
    ],
)
def test_expr(template: str, expected: str) -> None:
    ctx, _ = _ctx()
    assert expand(template, ctx) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Debug value: @{echo ${args.input}}", "Debug value: debug me"),
        ("@{echo}", ""),
        ("Your code is @{separate ${args.code}}", "Your code is A B C 1 2 3"),
        ("@{separate AB C}", "A B C"),
        ("@{separate}", ""),
    ],
)
def test_echo_and_separate(template: str, expected: str) -> None:
    ctx, _ = _ctx()
    assert expand(template, ctx) == expected


def test_sleep_expands_to_nothing_and_asks_the_caller_for_the_pause() -> None:
    ctx, env = _ctx()
    assert expand("Executed after @{sleep 2} second delay", ctx) == "Executed after  second delay"
    assert env.pause() == 2.0
    assert env.pause() == 0.0  # taken once
    assert expand("@{sleep 1.5}@{sleep 1}", ctx) == ""
    assert env.pause() == 2.5
    for bad in ("@{sleep soon}", "@{sleep -3}", "@{sleep nan}", "@{sleep}"):
        assert expand(bad, ctx) == ""
        assert env.pause() == 0.0
    expand("@{sleep 99999}", ctx)
    assert env.pause() == MAX_SLEEP_SECONDS


def test_an_unknown_function_stays_as_written_with_its_values_inserted() -> None:
    ctx, _ = _ctx()
    assert expand("@{nope ${args.code}}", ctx) == "@{nope ABC123}"
    assert expand("mail me @{ at home", ctx) == "mail me @{ at home"  # unclosed: text


def test_the_environment_is_not_reachable_from_a_template() -> None:
    ctx, _ = _ctx()
    assert expand("[${\x00template-env}][${\x00TEMPLATE-ENV.now}]", ctx) == "[][]"


def test_values_are_inserted_once_a_callers_words_never_run_a_function() -> None:
    ctx, env = _ctx()
    words = with_env({"args": {"said": "@{sleep 20} @{echo hi}"}}, env)
    assert expand("${args.said}", words) == "@{sleep 20} @{echo hi}"
    assert env.pause() == 0.0
    assert expand("${args.x}", ctx) == "a b/c?d"


def test_in_a_url_a_functions_result_is_encoded_whole() -> None:
    ctx, _ = _ctx()
    url = expand_url(
        "https://api.example.com/log?t=@{strftime_tz UTC %Y-%m-%d %H:%M}&q=@{echo ${args.x}}", ctx
    )
    assert url == "https://api.example.com/log?t=2025-01-15%2014%3A30&q=a%20b%2Fc%3Fd"


def test_expand_value_runs_functions_in_every_string() -> None:
    ctx, _ = _ctx()
    body = {"timestamp": "@{strftime_tz America/Chicago %Y-%m-%d %H:%M:%S}", "n": ["@{expr 6*7}"]}
    assert expand_value(body, ctx) == {"timestamp": "2025-01-15 08:30:45", "n": ["42"]}
