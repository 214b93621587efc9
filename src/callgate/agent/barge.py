"""Barge-in: when the caller talking over the agent stops the agent's speech (DESIGN §8).

The document's `params.enable_barge` / `params.barge_min_words` are parsed by `swml.barge` (the one
parser; the speech layer uses it too). `enable_barge` says which transcripts may cut the agent —
partial ones while the caller is still talking, complete utterances, both (SignalWire's default) or
none — and the caller must have said at least `barge_min_words` words (default 1), so a cough that
trips the VAD does not cut the agent. A value SignalWire would not accept leaves barge-in on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callgate.swml.barge import count_words, parse_enable_barge

DEFAULT_MIN_WORDS = 1


@dataclass(frozen=True)
class BargePolicy:
    enabled: bool = True
    min_words: int = DEFAULT_MIN_WORDS
    partial: bool = True  # partial transcripts (the caller still talking) may cut the agent
    complete: bool = True  # a finished utterance may

    @classmethod
    def from_params(cls, enable_barge: Any, barge_min_words: Any) -> BargePolicy:
        try:
            mode = parse_enable_barge(enable_barge)
        except ValueError:
            mode = parse_enable_barge(None)
        min_words = DEFAULT_MIN_WORDS
        if isinstance(barge_min_words, int | str) and not isinstance(barge_min_words, bool):
            try:
                min_words = max(1, int(barge_min_words))
            except ValueError:
                min_words = DEFAULT_MIN_WORDS
        return cls(enabled=mode.enabled, min_words=min_words, partial=mode.partial, complete=mode.complete)

    @property
    def wants_partials(self) -> bool:
        """Whether the leg should recognise partial transcripts while the agent speaks."""
        return self.enabled and self.partial

    def interrupts(self, heard: str, final: bool = True) -> bool:
        """Does this much of the caller's speech (a partial or final transcript) cut the agent?"""
        allowed = self.complete if final else self.partial
        return self.enabled and allowed and count_words(heard) >= self.min_words
