"""Speech to text: the pinned Whisper model (joined from its packages, tampering refused) and an
OpenAI-compatible /v1/audio/transcriptions endpoint on loopback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from callgate.speech.audio import from_wav
from callgate.speech.backends import SpeechBackends
from callgate.speech.base import SpeechError
from callgate.speech.openai_http import OpenAIRecognizer
from callgate.speech.settings import SpeechSettings
from callgate.speech.stt_whisper import (
    WHISPER_BASE_SHA256,
    WhisperRecognizer,
    packaged_parts,
    prepare_model,
    sha256_of,
)

from .conftest import Request, SpeechServer, tone


def test_the_joined_model_is_upstreams_file(whisper: WhisperRecognizer) -> None:
    assert WHISPER_BASE_SHA256.startswith("d01c3014") and WHISPER_BASE_SHA256.endswith("a0a6a9")
    (model_dir,) = whisper.cache_dir.glob("whisper-base-*")
    assert sha256_of(model_dir / "model.bin") == WHISPER_BASE_SHA256
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "config.json",
        "model.bin",
        "tokenizer.json",
        "vocabulary.txt",
    ]
    assert not list(whisper.cache_dir.glob(".whisper-*"))  # no staging left behind


def test_a_tampered_cached_model_is_refused(tmp_path: Path) -> None:
    target = tmp_path / f"whisper-base-{WHISPER_BASE_SHA256[:12]}"
    target.mkdir()
    (target / "model.bin").write_bytes(b"weights someone edited")
    parts, side = packaged_parts()
    with pytest.raises(SpeechError, match=r"is not the pinned Whisper base model .*refusing to load it"):
        prepare_model(tmp_path, parts, side)
    assert (target / "model.bin").read_bytes() == b"weights someone edited"  # left for inspection


async def test_a_tampered_model_fails_recognition_with_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / f"whisper-base-{WHISPER_BASE_SHA256[:12]}"
    target.mkdir()
    (target / "model.bin").write_bytes(b"\x00" * 1024)
    with pytest.raises(SpeechError, match="not the pinned Whisper base model"):
        await WhisperRecognizer(cache_dir=tmp_path).transcribe(b"\x00" * 3200, sample_rate=8000)


def test_parts_that_join_to_another_file_are_refused(tmp_path: Path) -> None:
    parts = [tmp_path / "model.bin.part1", tmp_path / "model.bin.part2"]
    parts[0].write_bytes(b"half of ")
    parts[1].write_bytes(b"a different model")
    _, side = packaged_parts()
    cache = tmp_path / "cache"
    with pytest.raises(SpeechError, match="the packages were changed; refusing to load it"):
        prepare_model(cache, parts, side)
    assert list(cache.iterdir()) == []  # nothing half-made is kept


def test_a_missing_part_is_reported(tmp_path: Path) -> None:
    parts, side = packaged_parts()
    with pytest.raises(SpeechError, match=r"incomplete: .*model\.bin\.part9 is missing"):
        prepare_model(tmp_path, [parts[0], parts[0].with_name("model.bin.part9")], side)


async def test_whisper_uses_the_language_and_rejects_an_unknown_one(whisper: WhisperRecognizer) -> None:
    assert await whisper.transcribe(b"\x00" * 16000, sample_rate=8000, language="en") == ""
    with pytest.raises(SpeechError, match="Whisper could not transcribe"):
        await whisper.transcribe(b"\x00" * 16000, sample_rate=8000, language="xx")


def test_commands_that_need_no_speech_import_no_model_runtime() -> None:
    code = (
        "import sys, callgate.cli, callgate.speech.backends, callgate.speech.settings;"
        "heavy = [m for m in ('faster_whisper', 'ctranslate2', 'onnxruntime', 'av') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- OpenAI-compatible endpoint


def _echo(request: Request) -> tuple[int, str, bytes]:
    """Answer with what arrived, so the test can check the wire format."""
    filename, ctype, wav = request.files["file"]
    pcm, rate = from_wav(wav)
    text = f"{filename} {ctype} {rate} Hz {len(pcm) // 2} samples, {request.form}"
    return 200, "application/json", json.dumps({"text": f" {text} "}).encode()


async def test_transcription_endpoint_wire_format(speech_server: SpeechServer) -> None:
    speech_server.handler = _echo
    stt = OpenAIRecognizer(speech_server.base_url, model="whisper-large-v3", api_key="k2")
    text = await stt.transcribe(tone(300, 1.0, 8000), sample_rate=8000, language="de", prompt="Callgate")
    form = {"model": "whisper-large-v3", "response_format": "json", "language": "de", "prompt": "Callgate"}
    assert text == f"speech.wav audio/wav 16000 Hz 16000 samples, {form}"
    request = speech_server.requests[0]
    assert request.path == "/v1/audio/transcriptions"
    assert request.headers["authorization"] == "Bearer k2"


async def test_transcription_endpoint_from_settings(speech_server: SpeechServer) -> None:
    speech_server.handler = lambda _r: (200, "application/json", b'{"text": "transfer me please"}')
    settings = SpeechSettings.from_params({}, env={"CALLGATE_STT_URL": speech_server.base_url})
    recognizer = SpeechBackends(env={}).recognizer(settings)
    assert isinstance(recognizer, OpenAIRecognizer)
    assert await recognizer.transcribe(tone(300, 0.5, 8000), sample_rate=8000) == "transfer me please"
    assert set(speech_server.requests[0].form) == {"model", "response_format"}


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ((500, "text/plain", b"CUDA out of memory"), "answered 500: CUDA out of memory"),
        ((401, "application/json", b'{"error": "bad key"}'), "answered 401"),
        ((200, "text/html", b"<html>hello</html>"), "sent no transcript"),
        ((200, "application/json", b'{"transcript": "x"}'), "sent no transcript"),
        ((200, "application/json", b'{"text": 42}'), "not a string"),
    ],
)
async def test_transcription_endpoint_failures(
    speech_server: SpeechServer, reply: tuple[int, str, bytes], message: str
) -> None:
    speech_server.handler = lambda _r: reply
    with pytest.raises(SpeechError, match=message):
        await OpenAIRecognizer(speech_server.base_url).transcribe(tone(300, 0.5, 8000), sample_rate=8000)


async def test_transcription_endpoint_timeout(speech_server: SpeechServer) -> None:
    speech_server.delay = 2.0
    speech_server.handler = lambda _r: (200, "application/json", b'{"text": "late"}')
    with pytest.raises(SpeechError, match="did not answer within"):
        await OpenAIRecognizer(speech_server.base_url, timeout=0.3).transcribe(
            b"\x00" * 3200, sample_rate=8000
        )


async def test_both_whisper_paths_hear_the_words(whisper: WhisperRecognizer) -> None:
    from callgate.speech.tts_espeak import EspeakSynthesizer

    from .conftest import telephone

    pcm = telephone(await EspeakSynthesizer().synthesize("I want to cancel my order.", sample_rate=8000))
    standard = WhisperRecognizer(cache_dir=whisper.cache_dir, short_window=False)
    standard._model = whisper._model  # the same loaded model, the 30 s window
    for recognizer in (whisper, standard):
        text = await recognizer.transcribe(pcm, sample_rate=8000, language="en")
        assert {"cancel", "order"} <= set(text.lower().replace(".", "").split())
    # Longer than the short window: the standard path, the sentences heard.
    sentences = [
        "I want to cancel my order.",
        "What time do you open tomorrow?",
        "Can I speak to the billing department please?",
        "I would like a refund for the shipping.",
        "Goodbye, thank you.",
    ]
    gap = b"\x00" * 8000
    long = b"".join(
        [telephone(await EspeakSynthesizer().synthesize(s, sample_rate=8000)) + gap for s in sentences]
    )
    long = long + long[: 16000 * 4]
    assert len(long) / 16000 > 15
    text = await whisper.transcribe(long, sample_rate=8000, language="en")
    heard = set(re.findall(r"[a-z]+", text.lower()))
    assert (
        len({"cancel", "order", "open", "tomorrow", "billing", "department", "refund", "goodbye"} & heard)
        >= 6
    )
