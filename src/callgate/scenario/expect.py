"""Checks a call's outcome against a scenario's `expect` block (DESIGN §6).

Every check returns human-readable failure lines; an empty list means the scenario passed.

- `said`: each entry is a substring of the caller-leg transcript, in order; the search for an entry
  starts where the previous entry's match ended.
- `never_said`: no entry appears anywhere in the transcript.
- `last_said`: the transcript of what was spoken up to the hang-up, with trailing whitespace removed,
  ends with the entry (trailing whitespace of the entry removed too; punctuation counts), and the
  utterance holding that end finished playing no later than the hang-up.
- `transfer`: some transfer matches every given field (`reason` as a substring).
- `functions` / `http`: each entry matched by some call/request; arguments and JSON bodies match as a
  recursive subset (dict keys present with matching values; lists of equal length, item by item).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from callgate.scenario.format import Expect, FunctionExpect, HttpExpect, TransferExpect
from callgate.telephony.base import destination_key
from callgate.timeline import CallOutcome, HttpExchange, TransferRecord, Utterance


def check(expect: Expect, outcome: CallOutcome) -> list[str]:
    """All failures of `outcome` against `expect`, including failures recorded during the call."""
    failures = list(outcome.failures)
    transcript = outcome.transcript("caller")
    failures += _check_said(expect.said, transcript)
    failures += _check_never_said(expect.never_said, transcript)
    if expect.ended is not None and outcome.ended_reason != expect.ended.value:
        failures.append(f"ended: expected {expect.ended.value}, got {outcome.ended_reason or 'no end'}")
    if expect.last_said is not None:
        failures += _check_last_said(expect.last_said, outcome)
    for wanted in expect.transfer:
        failures += _check_transfer(wanted, outcome.transfers)
    for function in expect.functions:
        failures += _check_function(function, outcome)
    for request in expect.http:
        failures += _check_http(request, outcome.http)
    return failures


def is_subset(expected: Any, actual: Any) -> bool:
    """True when `expected` is contained in `actual`: dicts by key, lists item by item, else equal."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and is_subset(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(is_subset(e, a) for e, a in zip(expected, actual, strict=True))
        )
    # `true` must not match 1, nor 1 match `true`.
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    return bool(expected == actual)


def _quote(text: str, limit: int = 200) -> str:
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    return repr(shown)


def _check_said(entries: list[str], transcript: str) -> list[str]:
    failures: list[str] = []
    position = 0
    previous: str | None = None
    for entry in entries:
        found = transcript.find(entry, position)
        if found < 0:
            if previous is not None and entry in transcript:
                failures.append(f"said: {entry!r} was said, but not after {previous!r}")
            else:
                failures.append(f"said: {entry!r} was never said; the agent said {_quote(transcript)}")
            continue
        position = found + len(entry)
        previous = entry
    return failures


def _check_never_said(entries: list[str], transcript: str) -> list[str]:
    failures: list[str] = []
    for entry in entries:
        found = transcript.find(entry)
        if found >= 0:
            context = transcript[max(0, found - 30) : found + len(entry) + 30]
            failures.append(f"never_said: {entry!r} was said: …{context}…")
    return failures


def _check_last_said(expected: str, outcome: CallOutcome) -> list[str]:
    if outcome.hangup_at is None:
        return [f"last_said: the call never hung up (expected the last words {expected!r})"]
    hangup_at = outcome.hangup_at
    spoken: list[Utterance] = [
        u for u in outcome.utterances if u.leg == "caller" and u.start <= hangup_at and u.text.strip()
    ]
    text = " ".join(u.text for u in spoken).rstrip()
    want = expected.rstrip()
    if not text.endswith(want):
        return [
            f"last_said: expected the call to end with {want!r}, the last words were {_quote(text[-80:])}"
        ]
    # The utterance holding the very end of the transcript is the last one with text.
    last = spoken[-1] if spoken else None
    if last is not None and (last.cut or last.end > hangup_at):
        return [
            f"last_said: {want!r} was cut off: it finished playing at {last.end:.3f}s, "
            f"after the hang-up at {hangup_at:.3f}s"
        ]
    return []


def _transfer_matches(wanted: TransferExpect, record: TransferRecord) -> bool:
    return (
        (wanted.to is None or destination_key(record.to) == destination_key(wanted.to))
        and (wanted.mode is None or record.mode == wanted.mode)
        and (wanted.result is None or record.result == wanted.result)
        and (wanted.reason is None or (record.reason is not None and wanted.reason in record.reason))
    )


def _describe_transfer(record: TransferRecord) -> str:
    reason = f" ({record.reason})" if record.reason else ""
    return f"{record.mode} to {record.to}: {record.result}{reason}"


def _check_transfer(wanted: TransferExpect, records: list[TransferRecord]) -> list[str]:
    if any(_transfer_matches(wanted, record) for record in records):
        return []
    fields = wanted.model_dump(exclude_none=True)
    seen = "; ".join(_describe_transfer(r) for r in records) or "no transfer happened"
    return [f"transfer: none matched {fields}; transfers: {seen}"]


def _check_function(wanted: FunctionExpect, outcome: CallOutcome) -> list[str]:
    same_name = [f for f in outcome.functions if f.name == wanted.name]
    if wanted.arguments is None and same_name:
        return []
    if any(is_subset(wanted.arguments or {}, f.arguments) for f in same_name):
        return []
    if not same_name:
        called = ", ".join(dict.fromkeys(f.name for f in outcome.functions)) or "none"
        return [f"functions: {wanted.name} was never called (called: {called})"]
    seen = "; ".join(repr(f.arguments) for f in same_name)
    return [f"functions: no {wanted.name} call had arguments {wanted.arguments!r} (calls: {seen})"]


def _http_matches(wanted: HttpExpect, exchange: HttpExchange) -> bool:
    return (
        (wanted.method is None or exchange.method.upper() == wanted.method)
        and fnmatchcase(exchange.url, wanted.url)
        and (not wanted.has_json or is_subset(wanted.json_body, exchange.json))
    )


def _check_http(wanted: HttpExpect, exchanges: list[HttpExchange]) -> list[str]:
    if any(_http_matches(wanted, exchange) for exchange in exchanges):
        return []
    label = f"{wanted.method or '*'} {wanted.url}"
    same_url = [e for e in exchanges if fnmatchcase(e.url, wanted.url)]
    if not same_url:
        seen = "; ".join(f"{e.method} {e.url}" for e in exchanges) or "none"
        return [f"http: no request to {label} (requests: {seen})"]
    seen = "; ".join(f"{e.method} {e.url} json={e.json!r}" for e in same_url)
    wanted_json = f" with json {wanted.json_body!r}" if wanted.has_json else ""
    return [f"http: no request {label}{wanted_json} (matching URL: {seen})"]
