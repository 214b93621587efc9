"""One leg's ear: frames in, `SpeechStarted` / `CallerSpeech` out.

`feed()` runs on the event loop for every 20 ms frame and only does the cheap part (VAD, frame
counting); transcription runs in a task that awaits the recogniser (Whisper works in a thread), so a
slow transcript never delays the next frame. Finals are transcribed one at a time, in order.

Partial transcripts cost a Whisper run each, so they are made only while the leg's owner asks for
them (`set_partials(True)`: the agent is speaking and barge-in wants words), at most one in flight
and at most every 0.6 s of audio; a partial that comes back after its utterance ended is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from callgate.speech.base import EventSink, Recognizer, SpeechError, frame_bytes
from callgate.speech.endpoint import Ended, Endpointer, Partial, Phase, Started
from callgate.speech.vad import FrameVad
from callgate.telephony.base import CallerSpeech, SpeechStarted
from callgate.telephony.clock import Clock

log = logging.getLogger(__name__)


class SpeechListener:
    def __init__(
        self,
        recognizer: Recognizer,
        vad: FrameVad,
        *,
        sink: EventSink,
        clock: Clock,
        sample_rate: int = 8000,
        end_of_speech_ms: int = 700,
        language: str | None = None,
        prompt: str | None = None,
        on_error: Callable[[SpeechError], None] | None = None,
        endpointer: Endpointer | None = None,
    ) -> None:
        self.recognizer = recognizer
        self.vad = vad
        self.sink = sink
        self.clock = clock
        self.sample_rate = sample_rate
        self.language = language
        self.prompt = prompt
        self.on_error = on_error
        self.endpointer = endpointer or Endpointer(end_of_speech_ms)
        self._frame_size = frame_bytes(sample_rate)
        self._partials = False
        self._paused = False
        self._closed = False
        self._utterance = 0  # numbers utterances, so late partials can be told apart
        self._finals: asyncio.Queue[bytes] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._partial_task: asyncio.Task[None] | None = None
        self.frames_heard = 0

    # ------------------------------------------------------------ Listener

    def feed(self, frame: bytes) -> None:
        if self._paused or self._closed:
            return
        if len(frame) != self._frame_size:
            raise ValueError(
                f"a frame at {self.sample_rate} Hz is {self._frame_size} bytes, not {len(frame)}"
            )
        self.frames_heard += 1
        for signal in self.endpointer.push(frame, self.vad.is_speech(frame)):
            if isinstance(signal, Started):
                self._utterance += 1
                self.sink(SpeechStarted())
            elif isinstance(signal, Partial):
                self._maybe_partial(signal)
            elif isinstance(signal, Ended):
                self._finals.put_nowait(signal.audio)
                if self._worker is None or self._worker.done():
                    self._worker = asyncio.get_running_loop().create_task(self._run_finals())

    def pause(self) -> None:
        self._paused = True
        self.endpointer.reset()
        self.vad.reset()
        self._utterance += 1  # a partial in flight now belongs to nothing

    def resume(self) -> None:
        self._paused = False

    async def aclose(self) -> None:
        self._closed = True
        for task in (self._worker, self._partial_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # ------------------------------------------------------------ partials switch

    def set_partials(self, enabled: bool) -> None:
        """Ask for partial transcripts (while the agent speaks) or stop them."""
        self._partials = enabled

    @property
    def partials(self) -> bool:
        return self._partials

    # ------------------------------------------------------------ recognition

    def _maybe_partial(self, signal: Partial) -> None:
        if not self._partials or (self._partial_task is not None and not self._partial_task.done()):
            return
        self._partial_task = asyncio.get_running_loop().create_task(
            self._run_partial(self._utterance, signal.audio)
        )

    async def _run_partial(self, utterance: int, audio: bytes) -> None:
        text = await self._transcribe(audio)
        # Deliver only if that utterance is still being spoken: a final supersedes it.
        current = utterance == self._utterance and self.endpointer.phase is Phase.SPEAKING
        if text and current and not self._closed and not self._paused:
            self.sink(CallerSpeech(text, final=False))

    async def _run_finals(self) -> None:
        while not self._finals.empty():
            text = await self._transcribe(self._finals.get_nowait())
            if text and not self._closed:
                self.sink(CallerSpeech(text, final=True))

    async def _transcribe(self, audio: bytes) -> str:
        try:
            return await self.recognizer.transcribe(
                audio, sample_rate=self.sample_rate, language=self.language, prompt=self.prompt
            )
        except SpeechError as exc:
            log.error("speech recognition failed: %s", exc)
            if self.on_error is not None:
                self.on_error(exc)
            return ""
