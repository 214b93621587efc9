"""G.711 by table: decoding matches the standard library's audioop (Python 3.11) code for code, and
encoding then decoding keeps every 16-bit sample within half a quantisation step."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from callgate.speech import codecs

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # removed in Python 3.13; the reference on 3.11/3.12

ALL_CODES = bytes(range(256))
ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int64)


@pytest.mark.parametrize(("codec", "reference"), [("PCMU", audioop.ulaw2lin), ("PCMA", audioop.alaw2lin)])
def test_decode_table_equals_audioop(codec: codecs.Codec, reference: object) -> None:
    ours = np.frombuffer(codecs.decode(ALL_CODES, codec), dtype="<i2")
    theirs = np.frombuffer(reference(ALL_CODES, 2), dtype="<i2")  # type: ignore[operator]
    assert ours.tolist() == theirs.tolist()


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_round_trip_error_is_bounded(codec: codecs.Codec) -> None:
    pcm = ALL_SAMPLES.astype("<i2").tobytes()
    encoded = codecs.encode(pcm, codec)
    assert len(encoded) == len(ALL_SAMPLES)  # one byte a sample
    back = np.frombuffer(codecs.decode(encoded, codec), dtype="<i2").astype(np.int64)
    error = np.abs(back - ALL_SAMPLES)
    # Logarithmic quantisation: the step grows with the magnitude, 1/16 of it at most (+ the floor).
    assert (error <= np.abs(ALL_SAMPLES) / 32 + 8).all()
    assert error[np.abs(ALL_SAMPLES) < 64].max() <= 8


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_decoded_codes_encode_to_themselves(codec: codecs.Codec) -> None:
    decoded = codecs.decode(ALL_CODES, codec)
    again = codecs.encode(decoded, codec)
    # Every code but μ-law's two zeros (0x7F and 0xFF both mean 0) is a fixed point.
    differs = [c for c, d in zip(ALL_CODES, again, strict=True) if c != d]
    assert differs == ([0x7F] if codec == "PCMU" else [])


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_speech_level_signal_keeps_telephone_quality(codec: codecs.Codec) -> None:
    t = np.arange(8000) / 8000
    x = (6000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    back = np.frombuffer(codecs.decode(codecs.encode(x.tobytes(), codec), codec), dtype="<i2")
    noise = back.astype(np.float64) - x
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(noise**2))
    assert snr > 30  # G.711 gives about 38 dB


def test_encode_agrees_with_audioop_within_one_step() -> None:
    pcm = ALL_SAMPLES.astype("<i2").tobytes()
    for codec, reference in (("PCMU", audioop.lin2ulaw), ("PCMA", audioop.lin2alaw)):
        ours = np.frombuffer(codecs.encode(pcm, codec), dtype=np.uint8).astype(np.int64)  # type: ignore[arg-type]
        theirs = np.frombuffer(reference(pcm, 2), dtype=np.uint8).astype(np.int64)
        # audioop truncates μ-law input to 14 bits first, which moves a few boundary samples by one code.
        assert np.abs(ours - theirs).max() <= 1
