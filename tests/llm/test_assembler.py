"""ToolCallAssembler: standard index deltas, repeated whole calls, cumulative and odd servers."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from callgate.llm.assembler import ToolCallAssembler, normalize_arguments
from callgate.llm.types import ToolCall


def delta(
    index: int | None = None, id: str | None = None, name: str | None = None, arguments: str | None = None
) -> dict[str, Any]:
    function: dict[str, Any] = {}
    if name is not None:
        function["name"] = name
    if arguments is not None:
        function["arguments"] = arguments
    out: dict[str, Any] = {"function": function}
    if index is not None:
        out["index"] = index
    if id is not None:
        out["id"] = id
        out["type"] = "function"
    return out


def assemble(*chunks: list[dict[str, Any]]) -> list[ToolCall]:
    assembler = ToolCallAssembler()
    for chunk in chunks:
        assembler.feed(chunk)
    return assembler.calls()


def test_standard_index_deltas_concatenate_arguments() -> None:
    calls = assemble(
        [delta(0, "call_1", "get_weather", "")],
        [delta(0, arguments='{"ci')],
        [delta(0, arguments='ty": "Par')],
        [delta(0, arguments='is"}')],
    )
    assert calls == [ToolCall("call_1", "get_weather", '{"city": "Paris"}')]


def test_parallel_standard_calls_interleaved() -> None:
    calls = assemble(
        [delta(0, "a", "one", '{"x"'), delta(1, "b", "two", "")],
        [delta(1, arguments='{"y": 2}'), delta(0, arguments=": 1}")],
    )
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("a", "one", {"x": 1}),
        ("b", "two", {"y": 2}),
    ]


def test_repeated_whole_call_in_every_chunk_is_one_call() -> None:
    # The IMS docs' example server: no index, same id and full arguments in every chunk.
    repeated = [delta(None, "call_abc123", "hangup", "\\{\\}")]
    calls = assemble(*([repeated] * 20))
    assert calls == [ToolCall("call_abc123", "hangup", "{}")]


def test_repeated_call_with_real_arguments_is_not_concatenated() -> None:
    chunk = [delta(0, "c", "transfer", '{"to": "sales"}')]
    assert assemble(chunk, chunk, chunk) == [ToolCall("c", "transfer", '{"to": "sales"}')]


def test_cumulative_arguments_replace() -> None:
    calls = assemble(
        [delta(0, "c", "f", '{"a"')],
        [delta(0, "c", "f", '{"a": 1')],
        [delta(0, "c", "f", '{"a": 1}')],
    )
    assert calls == [ToolCall("c", "f", '{"a": 1}')]


def test_id_repeated_with_each_fragment_still_concatenates() -> None:
    calls = assemble([delta(0, "c", "f", '{"a": ')], [delta(0, "c", None, "1}")])
    assert calls == [ToolCall("c", "f", '{"a": 1}')]


def test_distinct_ids_sharing_index_zero_are_distinct_calls() -> None:
    calls = assemble([delta(0, "x", "f", "{}")], [delta(0, "y", "g", "{}")])
    assert [c.id for c in calls] == ["x", "y"]


def test_calls_without_id_get_unique_ids() -> None:
    calls = assemble([delta(0, None, "f", "{}"), delta(1, None, "g", "{}")])
    assert [c.name for c in calls] == ["f", "g"]
    assert len({c.id for c in calls}) == 2 and all(c.id for c in calls)


def test_sdk_like_objects_and_object_arguments_are_accepted() -> None:
    # Attribute access as on the SDK's models; some servers send arguments as an object.
    function = SimpleNamespace(name="f", arguments={"k": "v"})
    assembler = ToolCallAssembler()
    assembler.feed([SimpleNamespace(index=0, id="o", function=function)])
    assert assembler.calls() == [ToolCall("o", "f", '{"k": "v"}')]


def test_empty_and_nameless_deltas_yield_nothing() -> None:
    assembler = ToolCallAssembler()
    assembler.feed(None)
    assembler.feed([{"type": "function"}])
    assert not assembler
    assembler.feed([delta(0, "n", None, "{}")])
    assert assembler.calls() == []  # a call without a name cannot be run


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", "{}"), ("  ", "{}"), ("\\{\\}", "{}"), ('{"a": 1}', '{"a": 1}'), ("{broken", "{broken")],
)
def test_normalize_arguments(raw: str, expected: str) -> None:
    assert normalize_arguments(raw) == expected


def test_parsed_arguments() -> None:
    assert ToolCall("i", "f", "").parsed_arguments() == {}
    assert ToolCall("i", "f", '{"a": [1]}').parsed_arguments() == {"a": [1]}
    with pytest.raises(ValueError, match="not valid JSON"):
        ToolCall("i", "f", "{broken").parsed_arguments()
    with pytest.raises(ValueError, match="not a JSON object"):
        ToolCall("i", "f", "[1]").parsed_arguments()
