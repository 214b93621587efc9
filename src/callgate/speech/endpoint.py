"""Where an utterance starts and ends, by counting 20 ms frames (no clock: frames are the clock).

An utterance starts after `onset_frames` consecutive speech frames (60 ms: a click is not speech) and
takes the `preroll_frames` before it along, since the VAD notices speech a little late. It ends once
`end_of_speech_ms` of consecutive non-speech frames have passed, or when it reaches `max_frames`
(30 s, Whisper's window). While it runs, a `Partial` snapshot is offered every `partial_every`
frames for the listener to transcribe when partials are wanted.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum

from callgate.speech.base import FRAME_MS


class Phase(Enum):
    IDLE = "idle"
    SPEAKING = "speaking"


_TRANSITIONS = {
    (Phase.IDLE, Phase.SPEAKING),  # onset
    (Phase.SPEAKING, Phase.IDLE),  # end of speech, or the utterance grew too long
}


@dataclass(frozen=True)
class Started:
    pass


@dataclass(frozen=True)
class Partial:
    audio: bytes
    frames: int


@dataclass(frozen=True)
class Ended:
    audio: bytes
    frames: int
    forced: bool = False  # cut at max_frames, not by silence


Signal = Started | Partial | Ended


class Endpointer:
    def __init__(
        self,
        end_of_speech_ms: int = 700,
        *,
        onset_frames: int = 3,
        preroll_frames: int = 15,
        trailing_frames: int = 10,
        partial_every: int = 30,
        max_frames: int = 1500,
    ) -> None:
        self.hangover_frames = max(1, math.ceil(end_of_speech_ms / FRAME_MS))
        self.onset_frames = onset_frames
        self.trailing_frames = trailing_frames
        self.partial_every = partial_every
        self.max_frames = max_frames
        self.phase = Phase.IDLE
        self._preroll: deque[bytes] = deque(maxlen=max(preroll_frames, onset_frames))
        self._run = 0  # consecutive speech frames (IDLE) or non-speech frames (SPEAKING)
        self._frames: list[bytes] = []
        self._since_partial = 0

    def _move(self, to: Phase) -> None:
        if (self.phase, to) not in _TRANSITIONS:
            raise RuntimeError(f"endpointer cannot go from {self.phase.value} to {to.value}")
        self.phase = to
        self._run = 0

    def push(self, frame: bytes, speech: bool) -> list[Signal]:
        if self.phase is Phase.IDLE:
            self._preroll.append(frame)
            self._run = self._run + 1 if speech else 0
            if self._run < self.onset_frames:
                return []
            self._move(Phase.SPEAKING)
            self._frames = list(self._preroll)
            self._preroll.clear()
            self._since_partial = 0
            return [Started()]
        self._frames.append(frame)
        self._run = 0 if speech else self._run + 1
        if self._run >= self.hangover_frames:
            return [self._end(forced=False)]
        if len(self._frames) >= self.max_frames:
            return [self._end(forced=True)]
        self._since_partial += 1
        if self._since_partial >= self.partial_every and speech:
            self._since_partial = 0
            return [Partial(b"".join(self._frames), len(self._frames))]
        return []

    def _end(self, *, forced: bool) -> Ended:
        silent_tail = 0 if forced else max(0, self._run - self.trailing_frames)
        kept = self._frames[: len(self._frames) - silent_tail]
        self._move(Phase.IDLE)
        self._frames = []
        return Ended(b"".join(kept), len(kept), forced)

    def reset(self) -> None:
        """Forget everything heard (hold): a half-heard utterance is dropped."""
        self.phase = Phase.IDLE
        self._run = 0
        self._frames = []
        self._preroll.clear()
