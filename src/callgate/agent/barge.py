"""Barge-in: when the caller talking over the agent stops the agent's speech (DESIGN §8).

SignalWire's `params.enable_barge` switches it: `false` or `""` off; `true`, `"complete"`,
`"partial"`, `"complete,partial"` on (SignalWire's default: on). The caller must have said at least
`params.barge_min_words` words (default 1) — so a cough that trips the VAD does not cut the agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_MIN_WORDS = 1
_OFF = {"", "false", "no", "off", "0", "none"}


@dataclass(frozen=True)
class BargePolicy:
    enabled: bool = True
    min_words: int = DEFAULT_MIN_WORDS

    @classmethod
    def from_params(cls, enable_barge: Any, barge_min_words: Any) -> BargePolicy:
        enabled = True
        if isinstance(enable_barge, bool):
            enabled = enable_barge
        elif isinstance(enable_barge, str):
            enabled = enable_barge.strip().lower() not in _OFF
        min_words = DEFAULT_MIN_WORDS
        if isinstance(barge_min_words, int | str) and not isinstance(barge_min_words, bool):
            try:
                min_words = max(1, int(barge_min_words))
            except ValueError:
                min_words = DEFAULT_MIN_WORDS
        return cls(enabled=enabled, min_words=min_words)

    def interrupts(self, heard: str) -> bool:
        """Does this much of the caller's speech (a partial or final transcript) cut the agent?"""
        return self.enabled and len(heard.split()) >= self.min_words
