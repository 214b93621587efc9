"""SentenceSplitter(eager=True): a sentence is given as soon as its end is certain, not one delta later."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callgate.llm.sentences import SentenceSplitter


@pytest.mark.parametrize("delta", ["Okay.", "Really?", "Wait!", "Well...", "Hmm…", 'He said "Hi."', "Done.)"])
def test_a_certain_end_is_given_at_once(delta: str) -> None:
    splitter = SentenceSplitter(eager=True)
    assert splitter.feed(delta) == [delta]
    assert splitter.flush() == []


@pytest.mark.parametrize("delta", ["It costs 3.", "Hello Mr.", "Bring snacks, e.g.", "Call J.", "Ask Dr."])
def test_a_dot_that_may_continue_waits(delta: str) -> None:
    splitter = SentenceSplitter(eager=True)
    assert splitter.feed(delta) == []


def test_what_follows_decides_after_a_doubtful_dot() -> None:
    splitter = SentenceSplitter(eager=True)
    assert splitter.feed("It costs 3.") == []
    assert splitter.feed("5 dollars.") == ["It costs 3.5 dollars."]
    assert splitter.feed(" Hello Mr.") == []
    assert splitter.feed(" Smith.") == ["Hello Mr. Smith."]


def test_punctuation_after_an_early_cut_is_not_a_sentence() -> None:
    splitter = SentenceSplitter(eager=True)
    assert splitter.feed("Really?") == ["Really?"]
    assert splitter.feed("!") == []
    assert splitter.feed('"') == []
    assert splitter.feed(" Yes") == []
    assert splitter.flush() == ["Yes"]


def test_the_default_still_waits_for_what_follows() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Okay.") == []
    assert splitter.feed(" Then") == ["Okay."]


def test_a_reply_streamed_as_a_model_streams_it() -> None:
    splitter = SentenceSplitter(eager=True)
    pieces = ["Sure", " thing", "!", " Your", " order", " ships", " on", " Jan", ".", " 5", ".", " Bye", "."]
    got = [splitter.feed(piece) for piece in pieces]
    assert got[2] == ["Sure thing!"]  # said the moment its "!" arrived
    assert got[8] == []  # "Jan." is an abbreviation
    assert got[10] == []  # "5." after a number: waits for what follows
    assert got[11] == ["Your order ships on Jan. 5."]
    assert got[12] == ["Bye."]
    assert splitter.flush() == []


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='ab .!?,\n3"', max_size=80), st.integers(min_value=1, max_value=9))
def test_no_word_is_lost(text: str, step: int) -> None:
    splitter = SentenceSplitter(max_chars=20, eager=True)
    pieces: list[str] = []
    for start in range(0, len(text), step):
        pieces += splitter.feed(text[start : start + step])
    pieces += splitter.flush()
    assert all(piece and piece == piece.strip() for piece in pieces)
    kept = "".join(char for char in "".join(pieces) if char.isalnum())
    assert kept == "".join(char for char in text if char.isalnum())
