"""Property-based tests (hypothesis) of callgate.template: it never raises, whatever the input."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from hypothesis import given, settings
from hypothesis import strategies as st

from callgate.template import expand, expand_value, has_placeholders, lookup

# JSON-like values, as documents, webhook responses and model arguments are.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
contexts = st.dictionaries(st.text(max_size=8), json_values, max_size=6)

# Text made mostly of the language's own syntax, so parsing corners are hit often.
syntax = st.sampled_from(
    ["${", "%{", "}", "{", "$", "%", ".", "[", "]", "[0]", "[-1]", ":", "lc:", "uc:", "enc:"]
)
names = st.sampled_from(["args", "a", "b", "meta_data", "array", "this", "url:", "0", " "])
template_text = st.lists(syntax | names | st.text(max_size=4), max_size=25).map("".join)

# The suite runs on a shared, loaded machine: timing must not make these flaky.
no_deadline = settings(deadline=None)

# Literal text: anything without a placeholder opener.
literal_text = st.text().filter(lambda text: "${" not in text and "%{" not in text)


@settings(max_examples=300, deadline=None)
@given(text=template_text | st.text(), ctx=contexts)
def test_expand_never_raises_and_returns_text(text: str, ctx: dict[str, Any]) -> None:
    assert isinstance(expand(text, ctx), str)


@no_deadline
@given(text=template_text, ctx=contexts)
def test_expand_value_never_raises(text: str, ctx: dict[str, Any]) -> None:
    expand_value({text: [text, {"k": text}], "n": 1}, ctx)


@no_deadline
@given(path=template_text | st.text(), ctx=contexts)
def test_lookup_never_raises(path: str, ctx: dict[str, Any]) -> None:
    lookup(path, ctx)


@no_deadline
@given(text=literal_text, ctx=contexts)
def test_text_without_openers_is_unchanged(text: str, ctx: dict[str, Any]) -> None:
    assert expand(text, ctx) == text
    assert expand_value(text, ctx) == text
    assert not has_placeholders(text)


@no_deadline
@given(text=template_text, ctx=contexts)
def test_text_without_a_complete_placeholder_is_unchanged(text: str, ctx: dict[str, Any]) -> None:
    if not has_placeholders(text):
        assert expand(text, ctx) == text


@no_deadline
@given(value=st.text())
def test_a_value_is_inserted_exactly_once(value: str) -> None:
    ctx = {"args": {"x": value}, "meta_data": {"secret": "s3cr3t"}}
    assert expand("<${args.x}>", ctx) == f"<{value}>"
    assert expand_value("${args.x}", ctx) == value


@no_deadline
@given(value=st.text().filter(lambda v: not any(0xD800 <= ord(c) <= 0xDFFF for c in v)))
def test_enc_round_trips_and_leaves_only_unreserved_characters(value: str) -> None:
    encoded = expand("${enc:args.x}", {"args": {"x": value}})
    assert unquote(encoded) == value
    assert all(c.isascii() and (c.isalnum() or c in "-._~%") for c in encoded)


@no_deadline
@given(
    value=st.text(), key=st.text(min_size=1, max_size=8).filter(lambda k: not set(k) & set(".[]{}:$% \t\r\n"))
)
def test_nested_lookup_by_a_looked_up_key(value: str, key: str) -> None:
    ctx = {"args": {"target": key}, "meta_data": {"table": {key: value}}}
    assert expand("${meta_data.table.${args.target}}", ctx) == value


@no_deadline
@given(items=st.lists(st.integers(), max_size=5), index=st.integers(min_value=-10, max_value=10))
def test_index_in_range_finds_the_item_and_anything_else_is_empty(items: list[int], index: int) -> None:
    found = expand(f"${{xs[{index}]}}", {"xs": items})
    assert found == (str(items[index]) if 0 <= index < len(items) else "")
