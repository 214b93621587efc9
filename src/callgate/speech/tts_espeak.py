"""Offline text-to-speech with the espeak-ng program (Debian `espeak-ng`).

Each sentence runs one short `espeak-ng --stdout` process (about 3 ms of CPU per second of speech):
the text goes in on stdin (so no text can pass for an option), a WAV comes out on stdout, and it is
resampled to the leg's rate. A process per sentence keeps calls independent; the library route
(`espeakng-loader` + ctypes) has one global synthesiser per process and a callback API that
serialises every call's speech (docs/speech.md).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess

from callgate.speech.audio import from_wav, resample
from callgate.speech.base import SpeechError

DEFAULT_WPM = 165  # a little slower than espeak's 175: easier on a phone line


def espeak_binary() -> str | None:
    return shutil.which("espeak-ng")


_voices: frozenset[str] | None = None


def espeak_voices(binary: str) -> frozenset[str]:
    """Names espeak-ng accepts for `-v` (language codes and voice names), read once."""
    global _voices
    if _voices is None:
        try:
            out = subprocess.run(
                [binary, "--voices"], capture_output=True, text=True, timeout=10, check=True
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise SpeechError(f"espeak-ng could not list its voices: {exc}") from exc
        names = set()
        for line in out.splitlines()[1:]:
            cols = line.split()
            if len(cols) >= 4:
                names.add(cols[1].lower())
                names.add(cols[3].lower())
        _voices = frozenset(names)
    return _voices


def pick_voice(language: str, voices: frozenset[str], preferred: str | None = None) -> str:
    """The espeak-ng voice for a BCP 47 language ("en-US" → "en-us", "es-ES" → "es")."""
    if preferred and preferred.split("+")[0].lower() in voices:
        return preferred.lower()
    code = language.replace("_", "-").lower()
    base = code.split("-")[0]
    for candidate in (code, base, f"{base}-{base}"):
        if candidate in voices:
            return candidate
    raise SpeechError(f"espeak-ng has no voice for language {language!r}")


class EspeakSynthesizer:
    def __init__(
        self,
        language: str = "en-US",
        voice: str | None = None,
        *,
        words_per_minute: int = DEFAULT_WPM,
        binary: str | None = None,
        timeout: float = 20.0,
    ) -> None:
        self.language = language
        self.voice = voice
        self.words_per_minute = words_per_minute
        self._binary = binary
        self.timeout = timeout

    @property
    def cache_key(self) -> str:
        return f"espeak:{self.voice or ''}:{self.words_per_minute}"

    async def synthesize(self, text: str, *, sample_rate: int, language: str | None = None) -> bytes:
        binary = self._binary or espeak_binary()
        if binary is None:
            raise SpeechError(
                "text-to-speech needs the espeak-ng program (apt-get install espeak-ng), "
                "or an OpenAI-compatible endpoint in params.tts_base_url / CALLGATE_TTS_URL"
            )
        voices = await asyncio.to_thread(espeak_voices, binary)
        voice = pick_voice(language or self.language, voices, self.voice)
        wav = await self._run(binary, voice, text)
        pcm, rate = from_wav(wav)
        return resample(pcm, rate, sample_rate)

    async def _run(self, binary: str, voice: str, text: str) -> bytes:
        try:
            proc = await asyncio.create_subprocess_exec(
                binary, "-b", "1", "-v", voice, "-s", str(self.words_per_minute), "--stdout",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
        except OSError as exc:
            raise SpeechError(f"could not run espeak-ng ({binary}): {exc}") from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(text.encode()), self.timeout)
        except TimeoutError:
            raise SpeechError(f"espeak-ng took longer than {self.timeout:g} s") from None
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if proc.returncode != 0:
            detail = err.decode(errors="replace").strip() or f"exit status {proc.returncode}"
            raise SpeechError(f"espeak-ng failed: {detail}")
        return out
