"""The audio contract (DESIGN §8) and the interfaces channels speak and hear through.

Audio moves in 20 ms frames of 16-bit little-endian mono PCM at the channel's rate (8 kHz for
G.711). A `Synthesizer` turns text into PCM; a `Recognizer` turns one finished utterance into text;
a `Listener` (one per leg) takes the leg's incoming frames, finds speech with a VAD, and reports
`SpeechStarted` / `CallerSpeech` events (`telephony.base`) to the channel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from callgate.telephony.base import CallEvent

FRAME_MS = 20
TELEPHONE_RATE = 8000
SAMPLE_WIDTH = 2  # bytes per 16-bit sample


def frame_bytes(sample_rate: int = TELEPHONE_RATE) -> int:
    """Bytes in one 20 ms PCM16 mono frame at `sample_rate` (320 at 8 kHz)."""
    return sample_rate * FRAME_MS // 1000 * SAMPLE_WIDTH


class SpeechError(Exception):
    """A speech backend failed (missing model, engine error, endpoint down)."""


@runtime_checkable
class Synthesizer(Protocol):
    """Text to speech."""

    async def synthesize(self, text: str, *, sample_rate: int, language: str | None = None) -> bytes:
        """`text` as 16-bit mono PCM at `sample_rate`. Raises SpeechError."""
        ...


@runtime_checkable
class Recognizer(Protocol):
    """Speech to text for one finished utterance."""

    async def transcribe(
        self,
        audio: bytes,
        *,
        sample_rate: int,
        language: str | None = None,
        prompt: str | None = None,
    ) -> str:
        """The words in `audio` (16-bit mono PCM), "" for none. Raises SpeechError."""
        ...


EventSink = Callable[[CallEvent], None]


@runtime_checkable
class Listener(Protocol):
    """One leg's ear: frames in, `SpeechStarted` / `CallerSpeech` events out (through a sink)."""

    def feed(self, frame: bytes) -> None:
        """One incoming 20 ms frame at the leg's rate. Cheap: recognition runs elsewhere."""
        ...

    def pause(self) -> None:
        """Stop hearing (hold): frames fed are dropped and a half-heard utterance is discarded."""
        ...

    def resume(self) -> None: ...

    async def aclose(self) -> None:
        """Stop, cancelling any recognition in flight."""
        ...


@runtime_checkable
class PartialsSwitch(Protocol):
    """A listener that can make partial transcripts on request (callgate's `SpeechListener`).

    Partials cost a recognition run each; the leg's owner asks for them only while they are useful
    (the agent is speaking and barge-in wants words: `BargeDetector.wants_partials`).
    """

    def set_partials(self, enabled: bool) -> None: ...
