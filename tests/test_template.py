"""Unit tests of the `${…}` template language (callgate.template)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest

from callgate.template import expand, expand_value, has_placeholders, lookup, to_text

# A context shaped as the swaig runtime builds it, with the seed's data.
CTX: dict[str, Any] = {
    "args": {"target": "Sales", "type": "jokes", "name": "Ada Lovelace", "city": "São Paulo/SP"},
    "input": {"args": {"target": "Sales", "name": "Ada Lovelace"}},
    "meta_data": {"table": {"support": "+1XXXXXXXXXX", "sales": "+1YYYYYYYYYY"}, "ada lovelace": "tea"},
    "global_data": {"tenant": "acme", "vip": True, "limit": 3},
    "caller_id_num": "+15557654321",
    "caller_id_name": "Ada",
    "call_id": "c2d3e4f5",
    "array": [{"joke": "A seed joke"}, {"joke": "Another."}],
    "Records": [{"secret": ["Info about user here"]}],
    "response": "The user information was stored.",
    "this": {"name": "Widget", "price": 9.5, "tags": ["a", "b"]},
    "matrix": [[1, 2], [3, 4]],
    "nothing": None,
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # The seed's examples.
        ("${meta_data.table.${lc:args.target}}", "+1YYYYYYYYYY"),
        ("Tell the user: ${array[0].joke}.", "Tell the user: A seed joke."),
        ("${Records[0].secret}", '["Info about user here"]'),
        ("${input.args.target}", "Sales"),
        ("https://example.com/v1/${args.type}", "https://example.com/v1/jokes"),
        ("Your info is ${meta_data.${lc:args.name}}", "Your info is tea"),
        ("${this.name} costs ${this.price}", "Widget costs 9.5"),
        # Sources: call variables, global_data, webhook response fields.
        ("${caller_id_name} ${caller_id_num} ${call_id}", "Ada +15557654321 c2d3e4f5"),
        ("${global_data.tenant}", "acme"),
        ("${response}", "The user information was stored."),
        ("${array[1].joke}", "Another."),
        ("${array.1.joke}", "Another."),
        ("${matrix[1][0]}", "3"),
        # `%{…}` is the same placeholder.
        (
            "https://example.com/name_bank?name=%{lc:args.name}",
            "https://example.com/name_bank?name=ada lovelace",
        ),
        ("%{array[0].joke}", "A seed joke"),
        ("${meta_data.table.%{lc:args.target}}", "+1YYYYYYYYYY"),
    ],
)
def test_expands_paths_and_sources(template: str, expected: str) -> None:
    assert expand(template, CTX) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${lc:args.target}", "sales"),
        ("${uc:args.target}", "SALES"),
        ("${enc:args.name}", "Ada%20Lovelace"),
        ("${enc:url:args.name}", "Ada%20Lovelace"),
        ("%{enc:args.city}", "S%C3%A3o%20Paulo%2FSP"),
        # Fixed order: case first, then encoding, whatever the written order.
        ("${lc:enc:args.name}", "ada%20lovelace"),
        ("${enc:lc:args.name}", "ada%20lovelace"),
        ("${enc:url:uc:args.city}", "S%C3%83O%20PAULO%2FSP"),
        # Both case modifiers: the leftmost wins.
        ("${uc:lc:args.target}", "SALES"),
        ("${lc:uc:args.target}", "sales"),
        # A modifier on a missing value is still empty.
        ("${enc:args.missing}", ""),
        # An unknown `name:` is part of the path, which then does not resolve.
        ("${foo:args.target}", ""),
        ("${url:args.target}", ""),
    ],
)
def test_modifiers(template: str, expected: str) -> None:
    assert expand(template, CTX) == expected


def test_enc_escapes_url_syntax_so_arguments_cannot_change_the_url() -> None:
    ctx = {"args": {"q": "a b&c=d?e#f/g%h+i"}}
    assert (
        expand("https://x.test/s?q=${enc:args.q}", ctx)
        == "https://x.test/s?q=a%20b%26c%3Dd%3Fe%23f%2Fg%25h%2Bi"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-12, "-12"),
        (1.5, "1.5"),
        (1e16, "1e+16"),
        (float("-inf"), "-Infinity"),
        (None, ""),
        ({"a": 1, "b": [True, None]}, '{"a":1,"b":[true,null]}'),
        (["é", 2], '["é",2]'),
        ((1, 2), "[1,2]"),
        ("text", "text"),
    ],
)
def test_non_string_values_render_as_json(value: Any, expected: str) -> None:
    assert expand("${v}", {"v": value}) == expected
    assert to_text(value) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${args.missing}", ""),
        ("[${nope}]", "[]"),
        ("${}", ""),
        ("${ }", ""),
        ("a${}b", "ab"),
        ("${args.target.deeper}", ""),  # non-dict intermediate
        ("${args.target[0]}", ""),  # a string is not indexed
        ("${array[-1].joke}", ""),
        ("${array[2].joke}", ""),
        ("${array[99999999999999999999999].joke}", ""),
        ("${array[x]}", ""),
        ("${this.tags[0].name}", ""),
        ("${nothing}", ""),
        ("${nothing.x}", ""),
        ("${args..target}", ""),
        ("${args.}", ""),
        ("${.args}", ""),
        ("${lc:}", ""),
        ("${meta_data.table.${lc:args.missing}}", ""),
    ],
)
def test_missing_values_expand_to_empty(template: str, expected: str) -> None:
    assert expand(template, CTX) == expected


@pytest.mark.parametrize(
    "template",
    [
        "$",
        "$$",
        "${",
        "%{",
        "${args.target",
        "text ${",
        "}",
        "{}",
        "{args.target}",
        "$ {args.target}",
        "100%",
        "%7B",
    ],
)
def test_incomplete_syntax_is_kept_as_written(template: str) -> None:
    assert expand(template, CTX) == template
    assert not has_placeholders(template)


def test_unclosed_placeholder_keeps_text_but_expands_what_is_complete_inside() -> None:
    assert expand("${a ${args.type} b", CTX) == "${a jokes b"
    assert expand("x } ${args.type}", CTX) == "x } jokes"


def test_stray_brace_inside_a_placeholder_belongs_to_the_path() -> None:
    assert expand("${a{b}", {"a{b": "ok"}) == "ok"


def test_deep_nesting_resolves_innermost_first() -> None:
    ctx = {"k0": "k1", "k1": "k2", "k2": "k3", "k3": "end"}
    assert expand("${${${${k0}}}}", ctx) == "end"
    # The inner modifier shapes the outer path; the outer one shapes the value found.
    assert expand("${lc:${uc:k0}}", {"k0": "name", "NAME": "Upper", "name": "lower"}) == "upper"
    assert expand("${array[${idx}].joke}", {**CTX, "idx": 1}) == "Another."


def test_nesting_beyond_the_limit_never_raises() -> None:
    deep = "${" * 5000 + "k" + "}" * 5000
    assert isinstance(expand(deep, {"k": "v"}), str)
    assert expand("${" * 5000, {}) == "${" * 5000


def test_values_are_not_expanded_twice() -> None:
    ctx = {"args": {"target": "${meta_data.secret}"}, "meta_data": {"secret": "s3cr3t"}}
    assert expand("to ${args.target}", ctx) == "to ${meta_data.secret}"
    # A nested value becomes path text inside the outer placeholder only.
    assert expand("${meta_data.${args.target}}", ctx) == ""


def test_names_match_exactly_first_then_without_case() -> None:
    ctx = {"Key": "upper", "key": "lower", "Only": "only"}
    assert expand("${Key} ${key} ${ONLY} ${only}", ctx) == "upper lower only only"


def test_unicode_keys_and_values() -> None:
    ctx = {"données": {"clé": "日本語 ✓"}}
    assert expand("→ ${données.clé} ←", ctx) == "→ 日本語 ✓ ←"
    assert expand("${enc:données.clé}", ctx) == "%E6%97%A5%E6%9C%AC%E8%AA%9E%20%E2%9C%93"


def test_lone_surrogate_is_encoded_without_raising() -> None:
    assert expand("${enc:v}", {"v": "a\ud800b"}) == "a%3Fb"


def test_whitespace_around_the_body_is_ignored() -> None:
    assert expand("${ args.target }", CTX) == "Sales"
    assert expand("${ lc: args.target }", CTX) == "sales"


def test_quoted_bracket_keys() -> None:
    ctx = {"headers": {"X-Id": "7", "a.b": "dotted"}}
    assert expand("${headers['X-Id']} ${headers[\"a.b\"]}", ctx) == "7 dotted"


def test_other_mappings_and_sequences_work_as_context() -> None:
    ctx = OrderedDict(args=OrderedDict(items=("x", "y")))
    assert expand("${args.items[1]}", ctx) == "y"
    assert expand("${args}", ctx) == '{"items":["x","y"]}'


class _Exploding(dict[str, Any]):
    def get(self, key: Any, default: Any = None) -> Any:
        raise RuntimeError("boom")

    def __getitem__(self, key: Any) -> Any:
        raise RuntimeError("boom")


def test_a_mapping_that_raises_reads_as_missing() -> None:
    assert expand("[${a.b}]", {"a": _Exploding(b=1)}) == "[]"
    assert lookup("a.b", {"a": _Exploding(b=1)}) is None


class _BadStr:
    def __str__(self) -> str:
        raise ValueError("no text")


def test_unrenderable_values_never_raise() -> None:
    circular: dict[str, Any] = {}
    circular["self"] = circular
    assert expand("${v}", {"v": _BadStr()}) == ""
    assert expand("${v}", {"v": circular}) == "{'self': {...}}"
    assert expand("${v}", {"v": 10**5000}) == ""
    assert expand("${v}", {"v": {(1, 2): "tuple key"}}) == "{(1, 2): 'tuple key'}"
    assert expand("${v}", {"v": {"s": {1}, "b": b"bytes"}}) == '{"s":[1],"b":"bytes"}'
    assert expand("${v}", {"v": float("nan")}) == "NaN"


def test_non_string_template_renders_as_text() -> None:
    assert expand(5, CTX) == "5"  # type: ignore[arg-type]
    assert expand(None, CTX) == ""  # type: ignore[arg-type]


# --- lookup ---------------------------------------------------------------------------


def test_lookup_returns_raw_values() -> None:
    assert lookup("meta_data.table", CTX) == {"support": "+1XXXXXXXXXX", "sales": "+1YYYYYYYYYY"}
    assert lookup("array[0]", CTX) == {"joke": "A seed joke"}
    assert lookup("global_data.limit", CTX) == 3
    assert lookup("global_data.vip", CTX) is True
    assert lookup("this.tags[1]", CTX) == "b"


@pytest.mark.parametrize("path", ["", "missing", "args.target.x", "array[5]", "array[-1]", "nothing", "[0]"])
def test_lookup_missing_is_none(path: str) -> None:
    assert lookup(path, CTX) is None


def test_lookup_of_a_non_string_path_is_none() -> None:
    assert lookup(3, CTX) is None  # type: ignore[arg-type]


def test_int_index_on_an_object_reads_its_digit_key() -> None:
    assert lookup("codes[0]", {"codes": {"0": "zero"}}) == "zero"


# --- expand_value ---------------------------------------------------------------------


def test_expand_value_expands_keys_and_values_like_the_seed_set_meta_data() -> None:
    action = {"set_meta_data": {"${lc:input.args.name}": "${Records[0].secret}"}}
    assert expand_value(action, CTX) == {"set_meta_data": {"ada lovelace": ["Info about user here"]}}


def test_expand_value_walks_the_seed_swml_transfer_action() -> None:
    action = [
        {"say": "Please stand by while I connect your call."},
        {
            "SWML": {
                "version": "1.0.0",
                "sections": {"main": [{"connect": {"to": "${meta_data.table.${lc:args.target}}"}}]},
            }
        },
        {"stop": "true"},
    ]
    expanded = expand_value(action, CTX)
    assert expanded[1]["SWML"]["sections"]["main"][0]["connect"]["to"] == "+1YYYYYYYYYY"
    assert expanded[0] == action[0]
    assert expanded[2] == {"stop": "true"}
    # The input is not modified.
    assert action[1]["SWML"]["sections"]["main"][0]["connect"]["to"].startswith("${")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${meta_data.table}", {"support": "+1XXXXXXXXXX", "sales": "+1YYYYYYYYYY"}),
        ("%{this.tags}", ["a", "b"]),
        ("${global_data.limit}", 3),
        ("${global_data.vip}", True),
        ("${this.price}", 9.5),
        ("${ global_data.limit }", 3),
        # Anything else becomes a string.
        ("limit ${global_data.limit}", "limit 3"),
        ("${global_data.limit}${global_data.limit}", "33"),
        ("${lc:global_data.vip}", "true"),
        ("${enc:this.tags}", "%5B%22a%22%2C%22b%22%5D"),
        ("${missing}", ""),
        ("${nothing}", ""),
        ("${args.target}", "Sales"),
        ("${meta_data.${lc:args.target}}", ""),
    ],
)
def test_expand_value_keeps_the_type_of_a_lone_plain_placeholder(value: str, expected: Any) -> None:
    assert expand_value(value, CTX) == expected


def test_expand_value_keeps_nested_lone_placeholder_type() -> None:
    ctx = {"which": "table", "meta_data": {"table": {"a": 1}}}
    assert expand_value("${meta_data.${which}}", ctx) == {"a": 1}


def test_expand_value_passes_other_scalars_and_turns_tuples_into_lists() -> None:
    assert expand_value({"n": 1, "b": False, "x": None, "t": ("${args.type}", 2)}, CTX) == {
        "n": 1,
        "b": False,
        "x": None,
        "t": ["jokes", 2],
    }
    assert expand_value({1: "${args.type}"}, CTX) == {1: "jokes"}


def test_expand_value_on_too_deep_a_structure_returns_it_unchanged() -> None:
    deep: Any = "${args.type}"
    for _ in range(5000):
        deep = [deep]
    assert expand_value(deep, CTX) is deep


# --- has_placeholders -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${a}", True),
        ("%{a}", True),
        ("x ${}", True),
        ("${a ${b}", True),
        ("plain", False),
        ("${a", False),
        ("", False),
        ("{a}", False),
    ],
)
def test_has_placeholders(text: str, expected: bool) -> None:
    assert has_placeholders(text) is expected


def test_has_placeholders_of_a_non_string_is_false() -> None:
    assert has_placeholders(None) is False  # type: ignore[arg-type]
