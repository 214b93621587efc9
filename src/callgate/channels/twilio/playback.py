"""`play()` on a Twilio leg: a WAV file (hold music) streamed to Twilio, looped if asked.

Twilio queues whatever we send and plays it in real time, so a looping source is sent a second at
a time with a mark after each second, and the next second goes out once the mark before it comes
back: at most two seconds are ever queued, and `stop()` (a `clear`) silences it at once.
An http(s) URL is fetched by the leg's source fetcher (the runtime's, which applies the document's
private-address guard) while the playback runs; without a fetcher, or for a source that is not a
readable WAV file, the playback is silence, said in the log: the leg still holds, the caller just
hears nothing.
"""

from __future__ import annotations

import asyncio
import logging
import wave
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np

from callgate.speech.audio import AudioSourceError, SourceFetcher, from_wav, resample
from callgate.speech.base import TELEPHONE_RATE, SpeechError

log = logging.getLogger(__name__)

CHUNK_FRAMES = 50  # one second of 20 ms frames between marks


def load_wav(source: str) -> bytes | None:
    """A WAV file as 8 kHz mono 16-bit PCM, or None if it is not one we can read."""
    path = Path(source.removeprefix("file://"))
    if not path.is_file():
        return None
    try:
        with wave.open(str(path), "rb") as wav:
            width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        log.warning("cannot read %s as WAV: %s", source, exc)
        return None
    if width != 2:
        log.warning("%s: only 16-bit WAV is supported (got %d-bit)", source, width * 8)
        return None
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    if rate != TELEPHONE_RATE and len(samples):
        count = int(len(samples) * TELEPHONE_RATE / rate)
        positions = np.linspace(0, len(samples) - 1, count)
        samples = np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)
    return bytes(np.clip(samples, -32768, 32767).astype("<i2").tobytes())


SendChunk = Callable[[list[bytes]], Coroutine[Any, Any, None]]
"""Sends μ-law frames followed by a mark; returns once that mark has come back."""


class StreamPlayback:
    """A running `play()`; the leg drives it with `run()` in a task."""

    def __init__(
        self,
        source: str,
        frames: list[bytes],
        loop: bool,
        stop_audio: Callable[[], Awaitable[None]],
        load: Callable[[], Awaitable[list[bytes]]] | None = None,
    ) -> None:
        """`load` makes the frames when the playback starts (a URL being fetched); until then, and
        if it fails (logged), the playback is silence."""
        self.source = source
        self._frames = frames
        self._load = load
        self._loop = loop
        self._stop_audio = stop_audio
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._chunks: list[asyncio.Task[None]] = []

    def start(self, send: SendChunk) -> None:
        self._task = asyncio.create_task(self._run(send), name=f"play {self.source}")

    async def _run(self, send: SendChunk) -> None:
        try:
            if self._load is not None:
                try:
                    self._frames = await self._load()
                except AudioSourceError as error:
                    log.warning("cannot play %s: %s: silence instead", self.source, error)
            if not self._frames:
                if self._loop:
                    await asyncio.Event().wait()  # silence until stopped
                return
            while True:
                for start in range(0, len(self._frames), CHUNK_FRAMES):
                    chunk = asyncio.create_task(send(self._frames[start : start + CHUNK_FRAMES]))
                    self._chunks.append(chunk)
                    if len(self._chunks) > 1:
                        await self._chunks.pop(0)  # keep at most two chunks queued at Twilio
                if not self._loop:
                    break
            for chunk in self._chunks:
                await chunk
        except Exception as exc:  # the leg ended under us: the playback simply ends
            log.debug("playback of %s ended: %s", self.source, exc)
        finally:
            for chunk in self._chunks:
                chunk.cancel()
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    async def stop(self) -> None:
        if self._done.is_set():
            return
        if self._task is not None:
            self._task.cancel()
        self._done.set()
        await self._stop_audio()

    async def wait(self) -> None:
        await self._done.wait()


async def fetch_wav(source: str, fetch: SourceFetcher) -> bytes:
    """An http(s) WAV source as 8 kHz mono PCM16, through the leg's fetcher (AudioSourceError if not)."""
    data = await fetch(source)
    try:
        pcm, rate = await asyncio.to_thread(from_wav, data)
    except SpeechError as error:
        raise AudioSourceError(str(error)) from error
    return await asyncio.to_thread(resample, pcm, rate, TELEPHONE_RATE)
