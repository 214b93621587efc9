"""Cut the model's streamed text into sentences, so speech can start before the reply is complete.

A sentence ends at `.`, `!`, `?` or `…` (with any closing quotes or brackets) followed by white space,
and at a line break. A period does not end a sentence after a known abbreviation ("Mr.", "e.g."),
an initial ("J.") or inside a number ("3.5"). A sentence longer than `max_chars` is cut at a comma,
or failing that a space, so that a rambling reply still starts speaking early.

With `eager=True` (the engine's choice) a sentence is given as soon as its end is certain, without
waiting for the next delta to show what follows: `?`, `!`, `…`, `...`, or a `.` after a word that is
not a known abbreviation, an initial or a number, at the end of what has arrived. Model tokenizers
keep a word's trailing dots and quotes with it, so what could still change the cut ("3." + "5", "Mr."
+ " Smith") is exactly what is left waiting. Punctuation that arrives after an eager cut (a closing
quote, a second `!`) belongs to the sentence already given and is not spoken on its own.
"""

from __future__ import annotations

import re

ABBREVIATIONS = frozenset(
    {
        # Not "no", "am", "pm": "No." and "I am." end sentences far more often on a phone call.
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "eg", "ie", "approx",
        "nr", "tel", "dept", "inc", "ltd", "corp", "ave", "blvd", "rd", "jan", "feb", "apr", "jun",
        "jul", "aug", "sep", "sept", "oct", "nov", "fig", "cf", "ext",
    }
)  # fmt: skip
_TERMINATORS = ".!?…"
_CLOSERS = "\"')]}\u201d\u2019»"
_SOFT_BREAKS = (", ", "; ", ": ", " - ")
_NEXT_MARK = re.compile(r"[.!?…\n]")


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the single `.` at `dot` closes an abbreviation or an initial rather than a sentence."""
    start = dot
    while start > 0 and not text[start - 1].isspace() and text[start - 1] not in "(\"'\u201c":
        start -= 1
    word = text[start:dot]
    if not word:
        return False
    if "." in word:  # "e.g", "U.S", "a.m"
        return True
    if len(word) == 1 and word.isalpha():  # an initial: "J. Smith"
        return True
    return word.lower() in ABBREVIATIONS


def _certain_end(text: str, pos: int, run: str) -> bool:
    """Whether the terminators `run` at `pos`, at the end of the text so far, surely end a sentence."""
    if run != ".":
        return True  # "?", "!", "...", "?!", "…"
    if _is_abbreviation(text, pos):
        return False
    return pos == 0 or not text[pos - 1].isdigit()  # "3." may become "3.5"


class SentenceSplitter:
    """Feed text deltas; get back whole sentences (stripped, never empty). `flush()` at the end."""

    def __init__(self, max_chars: int = 250, *, eager: bool = False) -> None:
        self.max_chars = max_chars
        self.eager = eager
        self._buffer = ""
        self._cut_early = False  # the last sentence was given before anything followed it

    def feed(self, text: str) -> list[str]:
        if self._cut_early:
            # Closing punctuation of the sentence already given ("Hi." + '"'), not a sentence of its own.
            rest = text.lstrip(_TERMINATORS + _CLOSERS)
            if rest or not text:
                self._cut_early = False
            text = rest
        self._buffer += text
        return self._split(final=False)

    def flush(self) -> list[str]:
        return self._split(final=True)

    def _split(self, final: bool) -> list[str]:
        out: list[str] = []
        text = self._buffer
        start = 0
        pos = 0
        while pos < len(text):
            char = text[pos]
            if char == "\n":
                self._emit(out, text[start:pos])
                start = pos = pos + 1
                continue
            if char not in _TERMINATORS:
                found = _NEXT_MARK.search(text, pos)  # jump to the next terminator or line break
                pos = found.start() if found else len(text)
                continue
            end = pos
            while end < len(text) and text[end] in _TERMINATORS:
                end += 1
            while end < len(text) and text[end] in _CLOSERS:
                end += 1
            if end >= len(text):
                if not final and not (self.eager and _certain_end(text, pos, text[pos:end].rstrip(_CLOSERS))):
                    break  # what follows decides; wait for it
                self._cut_early = not final
            elif not text[end].isspace():
                pos = end  # "3.5", "example.com"
                continue
            if text[pos:end].rstrip(_CLOSERS) == "." and _is_abbreviation(text, pos):
                pos = end
                continue
            self._emit(out, text[start:end])
            start = pos = end
        rest = text[start:]
        if final:
            self._emit(out, rest)
            rest = ""
        else:
            rest = self._cut_long(out, rest)
        self._buffer = rest
        return out

    def _emit(self, out: list[str], sentence: str) -> None:
        sentence = sentence.strip()
        while len(sentence) > self.max_chars:
            cut = self._soft_break(sentence)
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            out.append(sentence)

    def _cut_long(self, out: list[str], rest: str) -> str:
        """An unfinished sentence over `max_chars`: speak its beginning now."""
        while len(rest.strip()) > self.max_chars:
            stripped = rest.strip()
            cut = self._soft_break(stripped)
            out.append(stripped[:cut].strip())
            rest = stripped[cut:]
        return rest

    def _soft_break(self, sentence: str) -> int:
        window = sentence[: self.max_chars]
        for mark in _SOFT_BREAKS:
            found = window.rfind(mark)
            if found > 0:
                return found + len(mark.rstrip())
        space = window.rfind(" ")
        return space if space > 0 else self.max_chars
