"""Vapi's `endCallPhrases` (`params.end_call_phrases`): the agent saying one of them ends the call."""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES = re.compile(r"['\u2019\u2018`]")


def _normalize(text: str) -> str:
    """Case-folded words separated by single spaces; punctuation is ignored ("don't" → "dont")."""
    text = _APOSTROPHES.sub("", unicodedata.normalize("NFKC", text).casefold())
    words = "".join(char if char.isalnum() else " " for char in text).split()
    return " ".join(words)


def match_end_call_phrase(text: str, phrases: list[str]) -> str | None:
    """The first phrase that `text` contains, ignoring case and punctuation; None if none does.

    A phrase matches whole words only: "bye" matches "OK, bye!" but not "maybe".
    """
    haystack = f" {_normalize(text)} "
    for phrase in phrases:
        needle = _normalize(phrase)
        if needle and f" {needle} " in haystack:
            return phrase
    return None
