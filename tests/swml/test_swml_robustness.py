"""Whatever data or text arrives, loading ends in a Document or a DocumentError — never a crash."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callgate.swml import DocumentError, load_text, parse_document

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
_keys = st.sampled_from(
    [
        "ai", "prompt", "text", "pom", "SWAIG", "functions", "function", "data_map", "expressions",
        "webhooks", "output", "action", "pattern", "string", "url", "params", "connect", "to", "label",
        "switch", "case", "cond", "then", "SWML", "sections", "main", "languages", "pronounce", "with",
        "replace", "post_prompt", "includes", "defaults", "web_hook_url", "active", "transfer", "builtin",
    ]
) | st.text(max_size=6)  # fmt: skip
_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=5),
    max_leaves=40,
)


def _outcome(data: Any) -> str:
    try:
        parse_document(data, source="fuzz")
    except DocumentError as exc:
        assert exc.errors
        return "error"
    return "ok"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_values)
def test_any_data_at_the_top(data: Any) -> None:
    _outcome(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_values, max_size=4))
def test_any_verbs_in_main(verbs: list[Any]) -> None:
    _outcome({"sections": {"main": verbs}})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, max_size=6))
def test_any_ai_verb(ai: dict[str, Any]) -> None:
    _outcome({"sections": {"main": [{"ai": ai}]}})


@settings(max_examples=120, deadline=None)
@given(st.text(max_size=200))
def test_any_text(text: str) -> None:
    try:
        load_text(text, source="fuzz.yaml")
    except DocumentError as exc:
        assert exc.errors and all(issue.source == "fuzz.yaml" for issue in exc.errors)


@settings(max_examples=120, deadline=None)
@given(st.lists(_values, max_size=3))
def test_yaml_round_trip_keeps_lines_consistent(verbs: list[Any]) -> None:
    text = yaml.safe_dump({"sections": {"main": verbs}}, sort_keys=False)
    try:
        load_text(text, source="rt.yaml")
    except DocumentError as exc:
        lines = len(text.splitlines())
        assert all(issue.line is None or 1 <= issue.line <= lines for issue in exc.issues)
