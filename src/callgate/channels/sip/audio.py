"""What a SIP leg sends every 20 ms: queued speech, running playbacks (mixed), or silence.

- `SpeechQueue`: say() appends an utterance's frames; the pacer takes one per tick. The utterance's
  future resolves at the tick after its last frame left (its send time has passed), or fails with
  `SpeechInterrupted` (barge-in) / the leg's error.
- `PlaybackStream`: play() audio — a WAV file or http(s) URL at 8/16/22.05/44.1 kHz or any rate,
  resampled to 8 kHz by `speech.audio` — once or looping, with `stop()` / `wait()`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from callgate.speech.audio import AudioSourceError, SourceFetcher, from_wav, resample
from callgate.speech.base import TELEPHONE_RATE, SpeechError, frame_bytes
from callgate.swaig.fetch import safe_url
from callgate.swaig.guarded_transport import guarded_client, with_guard
from callgate.swaig.urlguard import Guard

FRAME = frame_bytes(TELEPHONE_RATE)  # 320 bytes of PCM16 = 160 samples
SILENCE = bytes(FRAME)


def split_frames(pcm: bytes) -> list[bytes]:
    """20 ms frames, the last one padded with silence."""
    if len(pcm) % 2:
        pcm = pcm[:-1]
    frames = [pcm[i : i + FRAME] for i in range(0, len(pcm), FRAME)]
    if frames and len(frames[-1]) < FRAME:
        frames[-1] = frames[-1] + bytes(FRAME - len(frames[-1]))
    return frames


def mix(frames: list[bytes]) -> bytes:
    if len(frames) == 1:
        return frames[0]
    total = np.zeros(FRAME // 2, dtype=np.int32)
    for frame in frames:
        total += np.frombuffer(frame, dtype="<i2")
    return bytes(np.clip(total, -32768, 32767).astype("<i2").tobytes())


# ---------------------------------------------------------------- reading WAV


def wav_to_pcm8k(data: bytes) -> bytes:
    """A WAV file's audio as 8 kHz mono PCM16 (the speech package reads and resamples it)."""
    try:
        pcm, rate = from_wav(data)
    except SpeechError as error:
        raise AudioSourceError(str(error)) from error
    return resample(pcm, rate, TELEPHONE_RATE)


async def load_source(
    source: str, *, timeout: float = 10.0, fetch: SourceFetcher | None = None, guard: Guard | None = None
) -> bytes:
    """play()'s source (a WAV file path, file:// URL or http(s) URL) as 8 kHz PCM16. A URL goes
    through `fetch` when the leg's owner gave one (the call's guarded fetcher: size cap, deadline,
    every redirect hop checked, failures on the call's timeline); otherwise, with `guard` (a URL an
    agent document chose), the URL, the address it connects to and every redirect hop pass the
    private-address guard."""
    if source.startswith(("http://", "https://")) and fetch is not None:
        data = await fetch(source)
    elif source.startswith(("http://", "https://")):
        problem = guard.url_refusal(source) if guard is not None else None
        if problem is not None:
            raise AudioSourceError(f"cannot fetch {safe_url(source)}: refused: {problem}")
        try:
            async with guarded_client(timeout=timeout, follow_redirects=True) as client:
                response = await client.get(source, extensions=with_guard(guard))
        except httpx.HTTPError as error:
            raise AudioSourceError(f"cannot fetch {safe_url(source)}: {error}") from error
        if response.status_code >= 400:
            raise AudioSourceError(f"cannot fetch {safe_url(source)}: HTTP {response.status_code}")
        data = response.content
    else:
        path = Path(source[len("file://") :] if source.startswith("file://") else source)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as error:
            raise AudioSourceError(f"cannot read {source}: {error.strerror or error}") from error
    return await asyncio.to_thread(wav_to_pcm8k, data)


# ---------------------------------------------------------------- outgoing sources


@dataclass
class Utterance:
    text: str
    frames: list[bytes]
    done: asyncio.Future[None]
    sent: int = 0
    finishing: bool = False  # the last frame has left; resolve at the next tick

    def heard(self) -> str:
        """The words played so far, in proportion to the frames sent (as the sim's say-cut)."""
        words = self.text.split()
        if not self.frames:
            return ""
        return " ".join(words[: int(len(words) * self.sent / len(self.frames))])


class SpeechQueue:
    """Utterances waiting for the pacer, oldest first."""

    def __init__(self) -> None:
        self._queue: deque[Utterance] = deque()

    def add(self, text: str, frames: list[bytes]) -> Utterance:
        utterance = Utterance(text, frames, asyncio.get_running_loop().create_future())
        if not frames:
            utterance.done.set_result(None)
        else:
            self._queue.append(utterance)
        return utterance

    @property
    def busy(self) -> bool:
        return bool(self._queue)

    def next_frame(self) -> bytes | None:
        """The next frame to send, resolving an utterance whose last frame left one tick ago."""
        while self._queue:
            current = self._queue[0]
            if current.finishing:
                self._queue.popleft()
                if not current.done.done():
                    current.done.set_result(None)
                continue
            if current.done.done():  # cancelled by its say()
                self._queue.popleft()
                continue
            frame = current.frames[current.sent]
            current.sent += 1
            if current.sent == len(current.frames):
                current.finishing = True
            return frame
        return None

    def fail_all(self, make_error: Callable[[Utterance], BaseException]) -> list[Utterance]:
        """Stop every queued utterance (barge-in, hold, hang-up); each say() raises its error."""
        stopped = list(self._queue)
        self._queue.clear()
        for utterance in stopped:
            if not utterance.done.done():
                utterance.done.set_exception(make_error(utterance))
        return stopped


@dataclass
class PlaybackStream:
    """A running play(): the Playback protocol plus the pacer's frame source."""

    source: str
    frames: list[bytes]
    loop: bool
    loaded: bool = True  # False while the source is still being fetched (nothing to play yet)
    position: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    how: str | None = None  # finished | stopped | call-ended | error: …

    def next_frame(self) -> bytes | None:
        if self.finished.is_set() or not self.loaded:
            return None
        if self.position >= len(self.frames):
            if self.loop and self.frames:
                self.position = 0
            else:
                self.end("finished")
                return None
        frame = self.frames[self.position]
        self.position += 1
        return frame

    def end(self, how: str) -> None:
        if not self.finished.is_set():
            self.how = how
            self.finished.set()

    async def stop(self) -> None:
        self.end("stopped")

    async def wait(self) -> None:
        await self.finished.wait()
