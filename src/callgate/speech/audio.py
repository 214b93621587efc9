"""PCM helpers: resampling (libsoxr through `soxr`), 20 ms framing, WAV in and out.

All audio here is 16-bit little-endian mono PCM (`speech.base`). Resampling a whole utterance uses
soxr's high quality; a live stream (one leg's frames into a 16 kHz VAD) uses `StreamResampler`,
which keeps the filter state between frames so frame edges leave no clicks.
"""

from __future__ import annotations

import io
import struct
import wave
from collections.abc import Awaitable, Callable

import numpy as np
import numpy.typing as npt
import soxr

from callgate.speech.base import SAMPLE_WIDTH, SpeechError, frame_bytes


class AudioSourceError(Exception):
    """A play() source that cannot be read (missing file, not a WAV, HTTP failure, a refused URL)."""


SourceFetcher = Callable[[str], Awaitable[bytes]]
"""Fetches an http(s) play() source's bytes, or raises AudioSourceError saying why not. The runtime
gives a leg one that applies the document's private-address guard (`runtime.audio_fetch`)."""


def samples(pcm: bytes) -> npt.NDArray[np.int16]:
    """PCM bytes as an int16 array (a view: no copy)."""
    return np.frombuffer(pcm, dtype="<i2")


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """`pcm` at `from_rate` as PCM at `to_rate` (the same bytes when the rates are equal)."""
    if from_rate == to_rate or not pcm:
        return pcm
    out = soxr.resample(samples(pcm), from_rate, to_rate, quality="HQ")
    return bytes(np.asarray(out, dtype="<i2").tobytes())


class StreamResampler:
    """Resamples a stream chunk by chunk with continuous filter state (for live frames)."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self._same = from_rate == to_rate
        # "QQ" (quick): the VAD needs no high fidelity, and its latency is a fraction of a frame.
        self._stream = None if self._same else soxr.ResampleStream(from_rate, to_rate, 1, "int16", "QQ")

    def push(self, pcm: bytes) -> bytes:
        if self._stream is None:
            return pcm
        out = self._stream.resample_chunk(samples(pcm))
        return bytes(np.asarray(out, dtype="<i2").tobytes())


def split_frames(pcm: bytes, sample_rate: int) -> list[bytes]:
    """`pcm` cut into 20 ms frames; the last one is padded with silence."""
    size = frame_bytes(sample_rate)
    if len(pcm) % 2:
        pcm = pcm[:-1]
    frames = [pcm[i : i + size] for i in range(0, len(pcm), size)]
    if frames and len(frames[-1]) < size:
        frames[-1] = frames[-1] + b"\x00" * (size - len(frames[-1]))
    return frames


class Rechunker:
    """Regroups a byte stream into chunks of a fixed size (e.g. 20 ms frames into 32 ms VAD windows)."""

    def __init__(self, chunk_bytes: int) -> None:
        self._size = chunk_bytes
        self._pending = bytearray()

    def push(self, data: bytes) -> list[bytes]:
        self._pending += data
        chunks = []
        while len(self._pending) >= self._size:
            chunks.append(bytes(self._pending[: self._size]))
            del self._pending[: self._size]
        return chunks

    def clear(self) -> None:
        self._pending.clear()


def to_wav(pcm: bytes, sample_rate: int) -> bytes:
    """A WAV file (RIFF, PCM 16-bit mono) holding `pcm`."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_WIDTH)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return out.getvalue()


def from_wav(data: bytes) -> tuple[bytes, int]:
    """(16-bit mono PCM, sample rate) from a WAV file.

    Tolerates what streaming encoders write (espeak-ng's `--stdout`, many TTS servers): RIFF and
    data sizes of 0 or 0xFFFFFFFF, meaning "until the end". Stereo is mixed down; 8-bit, 24-bit and
    32-bit PCM and 32-bit float are converted. Raises SpeechError for anything else.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise SpeechError(f"not a WAV file (starts {data[:12]!r})")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        body_start = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body_start + 16 > len(data):
                raise SpeechError("WAV file has a truncated fmt chunk")
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[body_start : body_start + 16])
            if tag == 0xFFFE and size >= 40:  # WAVE_FORMAT_EXTENSIBLE: the real tag opens the sub-format
                (tag,) = struct.unpack("<H", data[body_start + 24 : body_start + 26])
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise SpeechError("WAV file has its data before its fmt chunk")
            end = len(data) if size in (0, 0xFFFFFFFF) else min(len(data), body_start + size)
            return _to_pcm16(data[body_start:end], *fmt), fmt[2]
        pos = body_start + size + (size & 1)
    raise SpeechError("WAV file has no data chunk")


def _to_pcm16(raw: bytes, tag: int, channels: int, rate: int, bits: int) -> bytes:
    if channels < 1 or rate < 1:
        raise SpeechError(f"WAV file has {channels} channels at {rate} Hz")
    width = bits // 8
    usable = len(raw) - len(raw) % (width * channels) if width else 0
    raw = raw[:usable]
    if tag == 1 and bits == 16:
        values = np.frombuffer(raw, dtype="<i2").astype(np.float64)
    elif tag == 1 and bits == 8:
        values = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) * 256.0
    elif tag == 1 and bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        values = (((b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)) >> 16).astype(np.float64)
    elif tag == 1 and bits == 32:
        values = np.frombuffer(raw, dtype="<i4").astype(np.float64) / 65536.0
    elif tag == 3 and bits == 32:
        values = np.frombuffer(raw, dtype="<f4").astype(np.float64) * 32767.0
    else:
        raise SpeechError(f"unsupported WAV encoding (format tag {tag}, {bits} bits)")
    if channels > 1:
        values = values.reshape(-1, channels).mean(axis=1)
    return bytes(np.clip(np.round(values), -32768, 32767).astype("<i2").tobytes())
