"""Barge-in decisions (DESIGN §8): did the caller talk over the agent enough to stop it?

SignalWire's `enable_barge` names what may interrupt: "complete" (a finished utterance), "partial"
(a partial transcript while the caller is still talking), both ("complete,partial", or `true`), or
nothing (`false` / ""). `barge_min_words` is how many recognised words it takes (default 1).

`BargeDetector` is fed the leg's events while the agent speaks; `feed()` returns True once the caller
has barged in, and the channel then cuts the agent's audio. It is pure: no clock, no I/O.
"""

from __future__ import annotations

from callgate.swml.barge import BargeMode, count_words, parse_enable_barge
from callgate.telephony.base import CallerSpeech, CallEvent, SpeechStarted

__all__ = ["BargeDetector", "BargeMode", "count_words", "parse_enable_barge"]


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
