"""OpenAI-compatible speech endpoints: `/v1/audio/speech` (TTS) and `/v1/audio/transcriptions` (STT).

`base_url` is the API root as the OpenAI SDK takes it (`http://host:8000/v1`). A key, when the server
wants one, comes from `CALLGATE_SPEECH_API_KEY` (never from OPENAI_API_KEY: a self-hosted URL must
not receive the OpenAI key by accident). Every failure — connection, timeout, HTTP error, a body that
is not audio or not a transcript — is a SpeechError that says which endpoint and why.
"""

from __future__ import annotations

import json

import httpx
import numpy as np

from callgate.speech.audio import from_wav, resample, to_wav
from callgate.speech.base import SpeechError

OPENAI_PCM_RATE = 24000  # `response_format: pcm` is 24 kHz 16-bit mono, as OpenAI documents


def _endpoint(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + path


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


async def _post(url: str, timeout: float, what: str, **kwargs: object) -> httpx.Response:
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.post(url, **kwargs)  # type: ignore[arg-type]
    except httpx.TimeoutException:
        raise SpeechError(f"{what} endpoint {url} did not answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise SpeechError(f"{what} endpoint {url} unreachable: {exc}") from None
    if response.status_code >= 400:
        body = response.text[:200].strip()
        raise SpeechError(f"{what} endpoint {url} answered {response.status_code}: {body}")
    return response


class OpenAISynthesizer:
    def __init__(
        self,
        base_url: str,
        *,
        model: str = "tts-1",
        voice: str | None = None,
        api_key: str | None = None,
        timeout: float = 15.0,
    ) -> None:
        self.url = _endpoint(base_url, "/audio/speech")
        self.model = model
        self.voice = voice or "alloy"
        self.api_key = api_key
        self.timeout = timeout

    @property
    def cache_key(self) -> str:
        return f"openai:{self.url}:{self.model}:{self.voice}"

    async def synthesize(self, text: str, *, sample_rate: int, language: str | None = None) -> bytes:
        body = {"model": self.model, "input": text, "voice": self.voice, "response_format": "wav"}
        response = await _post(self.url, self.timeout, "TTS", json=body, headers=_headers(self.api_key))
        pcm, rate = _audio(response, self.url)
        return resample(pcm, rate, sample_rate)


def _audio(response: httpx.Response, url: str) -> tuple[bytes, int]:
    data = response.content
    if data[:4] == b"RIFF":
        try:
            return from_wav(data)
        except SpeechError as exc:
            raise SpeechError(f"TTS endpoint {url} sent a broken WAV: {exc}") from None
    ctype = response.headers.get("content-type", "").lower()
    if ctype.startswith(("audio/pcm", "audio/l16")) and len(data) % 2 == 0:
        rate = OPENAI_PCM_RATE
        for part in ctype.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key == "rate" and value.isdigit():
                rate = int(value)
        # audio/L16 is big-endian by RFC 2586; OpenAI's "pcm" is little-endian.
        if ctype.startswith("audio/l16"):
            data = np.frombuffer(data, dtype=">i2").astype("<i2").tobytes()
        return data, rate
    raise SpeechError(
        f"TTS endpoint {url} sent no audio (content-type {ctype or 'none'!r}, starts {data[:16]!r})"
    )


class OpenAIRecognizer:
    def __init__(
        self,
        base_url: str,
        *,
        model: str = "whisper-1",
        api_key: str | None = None,
        timeout: float = 15.0,
    ) -> None:
        self.url = _endpoint(base_url, "/audio/transcriptions")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout

    async def transcribe(
        self,
        audio: bytes,
        *,
        sample_rate: int,
        language: str | None = None,
        prompt: str | None = None,
    ) -> str:
        # 16 kHz is what Whisper-family servers work at; sending it saves them the resampling.
        wav = to_wav(resample(audio, sample_rate, 16000), 16000)
        data = {"model": self.model, "response_format": "json"}
        if language:
            data["language"] = language
        if prompt:
            data["prompt"] = prompt
        files = {"file": ("speech.wav", wav, "audio/wav")}
        response = await _post(
            self.url, self.timeout, "STT", data=data, files=files, headers=_headers(self.api_key)
        )
        try:
            text = json.loads(response.content)["text"]
        except (ValueError, KeyError, TypeError):
            raise SpeechError(
                f"STT endpoint {self.url} sent no transcript (expected JSON with `text`, got "
                f"{response.content[:80]!r})"
            ) from None
        if not isinstance(text, str):
            raise SpeechError(f"STT endpoint {self.url} sent a `text` that is not a string: {text!r}")
        return text.strip()
