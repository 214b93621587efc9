"""Text to speech: espeak-ng offline, an OpenAI-compatible /v1/audio/speech endpoint, the phrase cache."""

from __future__ import annotations

import numpy as np
import pytest

from callgate.speech.audio import samples
from callgate.speech.backends import SpeechBackends
from callgate.speech.base import SpeechError, Synthesizer
from callgate.speech.openai_http import OpenAISynthesizer
from callgate.speech.settings import SpeechSettings
from callgate.speech.tts_cache import CachedSynthesizer, PhraseCache
from callgate.speech.tts_espeak import EspeakSynthesizer

from .conftest import Request, SpeechServer, tone, wav_reply


def voiced_seconds(pcm: bytes, rate: int) -> float:
    x = samples(pcm).astype(np.float64)
    frames = x[: len(x) // (rate // 50) * (rate // 50)].reshape(-1, rate // 50)
    return float((np.sqrt((frames**2).mean(axis=1)) > 300).sum() * 0.02)


async def test_espeak_speaks_at_the_legs_rate() -> None:
    synth = EspeakSynthesizer("en-US")
    short = await synth.synthesize("Hello.", sample_rate=8000)
    long = await synth.synthesize("Hello. Thank you for calling, how can I help you today?", sample_rate=8000)
    assert len(short) % 2 == 0
    assert 0.2 < voiced_seconds(short, 8000) < len(short) / 16000
    assert voiced_seconds(long, 8000) > 2 * voiced_seconds(short, 8000)
    wide = await synth.synthesize("Hello.", sample_rate=16000)
    assert abs(len(wide) - 2 * len(short)) < 64  # the same speech, twice the samples


async def test_espeak_voice_follows_the_language() -> None:
    synth = EspeakSynthesizer("en-US")
    english = await synth.synthesize("Guten Tag", sample_rate=8000)
    german = await synth.synthesize("Guten Tag", sample_rate=8000, language="de-DE")
    assert english != german
    spanish = await EspeakSynthesizer("es-ES").synthesize("hola", sample_rate=8000)  # es-es → es
    assert voiced_seconds(spanish, 8000) > 0.2


async def test_text_that_looks_like_an_option_is_spoken_not_obeyed() -> None:
    pcm = await EspeakSynthesizer().synthesize("--help -v xx", sample_rate=8000)
    assert voiced_seconds(pcm, 8000) > 0.5


async def test_unknown_language_is_a_speech_error() -> None:
    with pytest.raises(SpeechError, match="no voice for language 'xx-YY'"):
        await EspeakSynthesizer("xx-YY").synthesize("hello", sample_rate=8000)


async def test_missing_espeak_binary_is_a_speech_error() -> None:
    with pytest.raises(SpeechError, match="espeak-ng"):
        await EspeakSynthesizer(binary="/nonexistent/espeak-ng").synthesize("hello", sample_rate=8000)


def test_backends_without_espeak_fail_only_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    backends = SpeechBackends(env={})  # building the factory needs nothing
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SpeechError, match="espeak-ng"):
        backends.synthesizer(SpeechSettings())


class Counting:
    def __init__(self, inner: EspeakSynthesizer) -> None:
        self.inner = inner
        self.calls = 0

    @property
    def cache_key(self) -> str:
        return self.inner.cache_key

    async def synthesize(self, text: str, *, sample_rate: int, language: str | None = None) -> bytes:
        self.calls += 1
        return await self.inner.synthesize(text, sample_rate=sample_rate, language=language)


async def test_cache_serves_fixed_phrases_once_synthesised() -> None:
    cache = PhraseCache()
    engine = Counting(EspeakSynthesizer())
    first = CachedSynthesizer(engine, cache, "en-US")
    second = CachedSynthesizer(engine, cache, "en-US")  # another call, same process
    a = await first.synthesize("Goodbye!", sample_rate=8000)
    b = await second.synthesize("Goodbye!", sample_rate=8000)
    assert a == b and engine.calls == 1 and cache.hits == 1
    await second.synthesize("Goodbye!", sample_rate=16000)  # another rate: another entry
    await second.synthesize("Goodbye!", sample_rate=8000, language="de-DE")  # another voice
    assert engine.calls == 3
    await second.synthesize("x" * 300, sample_rate=8000)
    await second.synthesize("x" * 300, sample_rate=8000)  # long texts are not kept
    assert engine.calls == 5 and len(cache) == 3


async def test_cache_is_bounded_least_recently_used_first() -> None:
    cache = PhraseCache(max_bytes=3000)
    engine = Counting(EspeakSynthesizer())
    key = (engine.cache_key, "en-US", 8000)
    cache.put((*key, "a"), b"\x00" * 1000)
    cache.put((*key, "b"), b"\x00" * 1000)
    cache.put((*key, "c"), b"\x00" * 1000)
    assert cache.get((*key, "a")) is not None  # a is now the most recent
    cache.put((*key, "d"), b"\x00" * 1000)
    assert cache.get((*key, "b")) is None and cache.get((*key, "a")) is not None
    cache.put((*key, "huge"), b"\x00" * 4000)
    assert cache.get((*key, "huge")) is None


def test_backends_pick_the_endpoint_when_configured() -> None:
    backends = SpeechBackends(env={"CALLGATE_SPEECH_API_KEY": "k1"})
    settings = SpeechSettings.from_params({"tts_base_url": "http://127.0.0.1:9/v1", "tts_voice": "nova"})
    synth = backends.synthesizer(settings)
    assert isinstance(synth, Synthesizer)
    assert isinstance(synth, CachedSynthesizer) and isinstance(synth.inner, OpenAISynthesizer)
    assert synth.inner.voice == "nova" and synth.inner.api_key == "k1"
    from_env = SpeechSettings.from_params({}, env={"CALLGATE_TTS_URL": "http://127.0.0.1:9/v1"})
    assert isinstance(backends.synthesizer(from_env), CachedSynthesizer)
    assert from_env.tts_base_url == "http://127.0.0.1:9/v1"


# ---------------------------------------------------------------- OpenAI-compatible endpoint


async def test_openai_speech_endpoint_wav(speech_server: SpeechServer) -> None:
    speech_server.handler = lambda _r: wav_reply(tone(440, 0.5, 24000), 24000)
    synth = OpenAISynthesizer(speech_server.base_url, model="tts-1-hd", voice="nova", api_key="secret")
    pcm = await synth.synthesize("Hello there.", sample_rate=8000)
    assert abs(len(samples(pcm)) - 4000) <= 2  # 0.5 s at 8 kHz
    request = speech_server.requests[0]
    assert request.path == "/v1/audio/speech"
    assert request.json == {
        "model": "tts-1-hd",
        "input": "Hello there.",
        "voice": "nova",
        "response_format": "wav",
    }
    assert request.headers["authorization"] == "Bearer secret"


async def test_openai_speech_endpoint_raw_pcm(speech_server: SpeechServer) -> None:
    speech_server.handler = lambda _r: (200, "audio/pcm", tone(440, 0.25, 24000))
    pcm = await OpenAISynthesizer(speech_server.base_url).synthesize("Hi", sample_rate=8000)
    assert abs(len(samples(pcm)) - 2000) <= 2  # OpenAI's raw pcm is 24 kHz
    assert "authorization" not in speech_server.requests[0].headers


def _server_error(_r: Request) -> tuple[int, str, bytes]:
    return 500, "application/json", b'{"error": "model crashed"}'


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (_server_error, "answered 500: .*model crashed"),
        (lambda _r: (200, "application/json", b'{"ok": true}'), "sent no audio"),
        (lambda _r: (200, "audio/wav", b"RIFF\x00\x00\x00\x00WAVEjunk"), "broken WAV"),
    ],
)
async def test_openai_speech_endpoint_failures(
    speech_server: SpeechServer, reply: object, message: str
) -> None:
    speech_server.handler = reply  # type: ignore[assignment]
    with pytest.raises(SpeechError, match=message):
        await OpenAISynthesizer(speech_server.base_url).synthesize("Hi", sample_rate=8000)


async def test_openai_speech_endpoint_timeout(speech_server: SpeechServer) -> None:
    speech_server.delay = 2.0
    speech_server.handler = lambda _r: wav_reply(tone(440, 0.1, 24000), 24000)
    with pytest.raises(SpeechError, match=r"did not answer within 0\.3 s"):
        await OpenAISynthesizer(speech_server.base_url, timeout=0.3).synthesize("Hi", sample_rate=8000)


async def test_openai_speech_endpoint_unreachable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(SpeechError, match="unreachable"):
            await OpenAISynthesizer(f"http://127.0.0.1:{port}/v1").synthesize("Hi", sample_rate=8000)
