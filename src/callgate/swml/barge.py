"""What a document's barge-in params mean (DESIGN §8): the one parser, used by the agent's barge
policy and by the speech layer's detector and settings.

SignalWire's `enable_barge` names what may interrupt: "complete" (a finished utterance), "partial"
(a partial transcript while the caller is still talking), both ("complete,partial", or `true`), or
nothing (`false` / ""). `barge_min_words` is how many recognised words it takes (default 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_WORD = re.compile(r"\w+(?:['’]\w+)*")


@dataclass(frozen=True)
class BargeMode:
    complete: bool
    partial: bool

    @property
    def enabled(self) -> bool:
        return self.complete or self.partial


def parse_enable_barge(value: Any) -> BargeMode:
    """SignalWire's `enable_barge` value; missing means "complete,partial" (SignalWire's default)."""
    if value is None:
        return BargeMode(complete=True, partial=True)
    if isinstance(value, bool):
        return BargeMode(complete=value, partial=value)
    if not isinstance(value, str):
        raise ValueError(f'expected true, false, "complete", "partial" or "complete,partial", not {value!r}')
    parts = {p.strip().lower() for p in value.split(",")} - {""}
    if not parts or parts <= {"false", "no", "off"}:
        return BargeMode(complete=False, partial=False)
    if parts <= {"true", "yes", "on"}:
        return BargeMode(complete=True, partial=True)
    unknown = parts - {"complete", "partial"}
    if unknown:
        raise ValueError(f'expected true, false, "complete", "partial" or "complete,partial", not {value!r}')
    return BargeMode(complete="complete" in parts, partial="partial" in parts)


def count_words(text: str) -> int:
    return len(_WORD.findall(text))
