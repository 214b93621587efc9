"""end_call_phrases (Vapi's endCallPhrases): case- and punctuation-insensitive, whole words."""

from __future__ import annotations

import pytest

from callgate.llm.phrases import match_end_call_phrase

PHRASES = ["goodbye", "Have a great day!", "talk to you later"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thanks for calling. Goodbye!", "goodbye"),
        ("GOODBYE", "goodbye"),
        ("You too, have a GREAT day.", "Have a great day!"),
        ("Okay, talk to you... later!", "talk to you later"),
        ("Okay, talk-to-you later", "talk to you later"),
        ("Let me check that for you.", None),
        ("That goodbyes thing", None),
        ("", None),
    ],
)
def test_match(text: str, expected: str | None) -> None:
    assert match_end_call_phrase(text, PHRASES) == expected


def test_no_phrases_or_empty_phrases_never_match() -> None:
    assert match_end_call_phrase("goodbye", []) is None
    assert match_end_call_phrase("goodbye", ["", "  ", "!!"]) is None


def test_apostrophes_and_unicode_punctuation() -> None:
    assert match_end_call_phrase("I\u2019ll let you go now.", ["I'll let you go"]) == "I'll let you go"
    assert match_end_call_phrase("Adi\u00f3s, amigo", ["adi\u00f3s"]) == "adi\u00f3s"
