"""Resampling, framing and WAV parsing."""

from __future__ import annotations

import struct
import subprocess

import numpy as np
import pytest

from callgate.speech.audio import (
    Rechunker,
    StreamResampler,
    from_wav,
    resample,
    samples,
    split_frames,
    to_wav,
)
from callgate.speech.base import SpeechError, frame_bytes

from .conftest import tone


def peak_hz(pcm: bytes, rate: int) -> float:
    x = samples(pcm).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 8000), (22050, 8000), (24000, 16000)])
def test_resample_keeps_duration_and_pitch(src: int, dst: int) -> None:
    pcm = tone(440, 1.0, src)
    out = resample(pcm, src, dst)
    assert abs(len(samples(out)) - dst) <= 2
    assert abs(peak_hz(out, dst) - 440) < 3


def test_resample_same_rate_is_identity() -> None:
    pcm = tone(300, 0.1, 8000)
    assert resample(pcm, 8000, 8000) == pcm
    assert resample(b"", 8000, 16000) == b""


def test_resampling_to_8k_removes_what_8k_cannot_carry() -> None:
    out = resample(tone(6000, 1.0, 16000), 16000, 8000)  # above the 4 kHz Nyquist limit
    assert np.abs(samples(out)[100:-100]).max() < 200  # filtered, not aliased to 2 kHz (edges aside)


def test_stream_resampler_matches_a_continuous_signal() -> None:
    pcm = tone(440, 1.0, 8000)
    stream = StreamResampler(8000, 16000)
    out = b"".join(stream.push(f) for f in split_frames(pcm, 8000))
    assert abs(len(samples(out)) - 16000) < 400  # a short filter delay at most
    assert abs(peak_hz(out, 16000) - 440) < 3


def test_split_frames_pads_the_last_frame() -> None:
    pcm = b"\x01\x00" * 250  # 250 samples at 8 kHz: one full frame (160) + 90
    frames = split_frames(pcm, 8000)
    assert [len(f) for f in frames] == [frame_bytes(8000)] * 2
    assert frames[1][180:] == b"\x00" * 140
    assert split_frames(b"", 8000) == []


def test_rechunker_regroups_frames() -> None:
    chunks = Rechunker(1024)
    out = [c for _ in range(10) for c in chunks.push(b"\x01" * 640)]
    assert [len(c) for c in out] == [1024] * 6  # 6400 bytes in, 6144 out, 256 waiting
    chunks.clear()
    assert chunks.push(b"\x01" * 1000) == []


def test_wav_round_trip() -> None:
    pcm = tone(440, 0.2, 16000)
    assert from_wav(to_wav(pcm, 16000)) == (pcm, 16000)


def test_espeak_streaming_wav_is_read() -> None:
    wav = subprocess.run(
        ["espeak-ng", "--stdout", "hello"], capture_output=True, check=True, timeout=20
    ).stdout
    (size,) = struct.unpack("<I", wav[40:44])
    assert size > len(wav)  # espeak-ng writes a "to the end" size when writing to a pipe
    pcm, rate = from_wav(wav)
    assert rate == 22050
    assert len(pcm) == len(wav) - 44
    assert np.abs(samples(pcm)).max() > 1000


def _wav(fmt_tag: int, channels: int, rate: int, bits: int, data: bytes, extra_chunk: bool = False) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if extra_chunk:
        chunks += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # odd size: padded
    chunks += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def test_other_wav_encodings_become_16_bit_mono() -> None:
    stereo = np.array([[1000, 3000], [-2000, -4000]], dtype="<i2").tobytes()
    assert samples(from_wav(_wav(1, 2, 8000, 16, stereo, extra_chunk=True))[0]).tolist() == [2000, -3000]
    eight = bytes([128, 255, 0])
    assert samples(from_wav(_wav(1, 1, 8000, 8, eight))[0]).tolist() == [0, 32512, -32768]
    floats = np.array([0.5, -1.0], dtype="<f4").tobytes()
    assert samples(from_wav(_wav(3, 1, 24000, 32, floats))[0]).tolist() == [16384, -32767]
    int24 = bytes([0x00, 0x00, 0x40, 0x00, 0x00, 0xC0])  # +0.5, -0.5 of full scale
    assert samples(from_wav(_wav(1, 1, 8000, 24, int24))[0]).tolist() == [16384, -16384]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a wav at all", "not a WAV file"),
        (b"RIFF\x00\x00\x00\x00WAVE", "no data chunk"),
        (_wav(2, 1, 8000, 4, b"\x00" * 10), "unsupported WAV encoding"),
        (b"RIFF\x00\x00\x00\x00WAVEdata\x02\x00\x00\x00\x00\x00", "data before its fmt"),
        (_wav(1, 0, 8000, 16, b"\x00" * 4), "0 channels"),
    ],
)
def test_broken_wav_is_a_speech_error(data: bytes, message: str) -> None:
    with pytest.raises(SpeechError, match=message):
        from_wav(data)
