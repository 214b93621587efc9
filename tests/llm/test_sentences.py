"""SentenceSplitter: sentence-sized pieces for TTS, whatever the deltas."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callgate.llm.sentences import SentenceSplitter


def split(text: str, step: int | None = None, max_chars: int = 250) -> list[str]:
    splitter = SentenceSplitter(max_chars=max_chars)
    out: list[str] = []
    if step is None:
        out += splitter.feed(text)
    else:
        for start in range(0, len(text), step):
            out += splitter.feed(text[start : start + step])
    return out + splitter.flush()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello there. How are you?", ["Hello there.", "How are you?"]),
        ("Wait! Really?! Yes.", ["Wait!", "Really?!", "Yes."]),
        ("Hello Mr. Smith, welcome.", ["Hello Mr. Smith, welcome."]),
        ("Bring snacks, e.g. chips. Then go.", ["Bring snacks, e.g. chips.", "Then go."]),
        ("It costs 3.5 dollars. Thanks.", ["It costs 3.5 dollars.", "Thanks."]),
        ("Call J. Doe today. Bye.", ["Call J. Doe today.", "Bye."]),
        ("No. I can't.", ["No.", "I can't."]),
        ('He said "Hi." Then left.', ['He said "Hi."', "Then left."]),
        ("Visit example.com today", ["Visit example.com today"]),
        ("Line one\nLine two\n\nLine three", ["Line one", "Line two", "Line three"]),
        ("Well... let me think. Ok", ["Well...", "let me think.", "Ok"]),
        ("", []),
        ("   ", []),
    ],
)
def test_sentences(text: str, expected: list[str]) -> None:
    assert split(text) == expected
    assert split(text, step=1) == expected
    assert split(text, step=4) == expected


def test_sentence_waits_for_what_follows_the_period() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("It costs 3.") == []
    assert splitter.feed("5 dollars. And") == ["It costs 3.5 dollars."]
    assert splitter.flush() == ["And"]


def test_first_sentence_is_given_before_the_reply_ends() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Sure thing! Let me") == ["Sure thing!"]


def test_long_sentence_is_cut_at_a_comma() -> None:
    text = "word " * 10 + ", " + "more " * 10
    pieces = split(text, max_chars=60)
    assert all(len(piece) <= 60 for piece in pieces)
    assert pieces[0].endswith(",")
    assert " ".join(pieces).split() == text.split()


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab .!?,\n3", max_size=80), st.integers(min_value=1, max_value=9))
def test_no_text_is_lost(text: str, step: int) -> None:
    pieces = split(text, step=step, max_chars=20)
    assert "".join("".join(pieces).split()) == "".join(text.split())
    assert all(piece and piece == piece.strip() for piece in pieces)
