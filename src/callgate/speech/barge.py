"""Barge-in decisions (DESIGN §8): did the caller talk over the agent enough to stop it?

SignalWire's `enable_barge` names what may interrupt: "complete" (a finished utterance), "partial"
(a partial transcript while the caller is still talking), both ("complete,partial", or `true`), or
nothing (`false` / ""). `barge_min_words` is how many recognised words it takes (default 1).

`BargeDetector` is fed the leg's events while the agent speaks; `feed()` returns True once the caller
has barged in, and the channel then cuts the agent's audio. It is pure: no clock, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from callgate.telephony.base import CallerSpeech, CallEvent, SpeechStarted

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


class BargeDetector:
    """One stretch of agent speech: feed it the caller's events; True means "stop talking now".

    A barge needs the caller to have started speaking (VAD onset, `SpeechStarted`) during this
    stretch, then a transcript of this utterance with at least `min_words` words: a partial one when
    the mode allows partials, a final one when it allows complete utterances. A transcript with no
    onset seen (an utterance that began before the agent spoke) does not count.
    """

    def __init__(self, mode: BargeMode, min_words: int = 1) -> None:
        self.mode = mode
        self.min_words = max(1, min_words)
        self._speaking = False
        self.barged = False
        self.heard = ""

    @property
    def wants_partials(self) -> bool:
        """Whether the listener should produce partial transcripts while the agent speaks."""
        return self.mode.partial

    def reset(self) -> None:
        """A new stretch of agent speech begins."""
        self._speaking = False
        self.barged = False
        self.heard = ""

    def feed(self, event: CallEvent) -> bool:
        if self.barged or not self.mode.enabled:
            return self.barged
        if isinstance(event, SpeechStarted):
            self._speaking = True
        elif isinstance(event, CallerSpeech) and self._speaking:
            allowed = self.mode.complete if event.final else self.mode.partial
            if allowed and count_words(event.text) >= self.min_words:
                self.barged = True
                self.heard = event.text
            if event.final:
                self._speaking = False
        return self.barged
