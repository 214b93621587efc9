from __future__ import annotations

from callgate.records.post_prompt import split_answer


def test_prose_only_has_nothing_parsed() -> None:
    data = split_answer("The caller asked about bread.")
    assert data.raw == "The caller asked about bread."
    assert data.substituted == "The caller asked about bread."
    assert data.parsed == []


def test_json_is_parsed_and_removed_from_the_text() -> None:
    raw = 'Summary: {"intent": "order", "items": [1, 2]} then thanks.'
    data = split_answer(raw)
    assert data.raw == raw
    assert data.parsed == [{"intent": "order", "items": [1, 2]}]
    assert data.substituted == "Summary: then thanks."


def test_several_objects_and_a_fenced_block() -> None:
    raw = 'First {"a": 1}\n```json\n{"b": {"c": true}}\n```\nend'
    data = split_answer(raw)
    assert data.parsed == [{"a": 1}, {"b": {"c": True}}]
    assert data.substituted == "First end"


def test_only_json_leaves_an_empty_substituted() -> None:
    assert split_answer('{"resolved": false}').substituted == ""


def test_broken_json_and_lone_braces_stay_text() -> None:
    raw = 'Use {name} and {"unterminated": '
    data = split_answer(raw)
    assert data.parsed == []
    assert data.substituted == raw.strip()


def test_arrays_of_objects_count_but_plain_arrays_do_not() -> None:
    data = split_answer('a [{"x": 1}, {"y": 2}] b [1, 2]')
    assert data.parsed == [[{"x": 1}, {"y": 2}]]
    assert data.substituted == "a b [1, 2]"


def test_empty_answer() -> None:
    data = split_answer("")
    assert (data.raw, data.substituted, data.parsed) == ("", "", [])
