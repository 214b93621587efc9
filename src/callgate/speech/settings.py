"""One call's speech settings, from the agent document's `params`, `languages` and `hints` + the environment.

SignalWire's names keep their meaning: `end_of_speech_timeout` (ms of silence closing an utterance,
default 700), `enable_barge` (false or "" off; true, "complete", "partial", "complete,partial" on),
`barge_min_words` (default 1). callgate's own additions: `stt_base_url` / `tts_base_url` (an
OpenAI-compatible speech endpoint, else `CALLGATE_STT_URL` / `CALLGATE_TTS_URL`, else offline),
`stt_model`, `tts_model`, `tts_voice` (names sent to such an endpoint), `tts_engine` ("espeak", the
default, or "piper"), `hangup_delay_ms` (the far end's jitter allowance before the leg is ended or
transferred; unset keeps the channel's default, 200).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from callgate.speech.barge import BargeMode, parse_enable_barge
from callgate.speech.base import SpeechError

DEFAULT_END_OF_SPEECH_MS = 700
TTS_ENGINES = ("espeak", "piper")


@dataclass(frozen=True)
class SpeechSettings:
    end_of_speech_timeout: int = DEFAULT_END_OF_SPEECH_MS
    language: str = "en-US"  # BCP 47, from the first of `languages`
    voice: str | None = None  # `languages[0].voice`
    hints: tuple[str, ...] = ()
    stt_base_url: str | None = None
    tts_base_url: str | None = None
    stt_model: str = "whisper-1"
    tts_model: str = "tts-1"
    tts_voice: str | None = None
    tts_engine: str = "espeak"
    enable_barge: BargeMode = field(default_factory=lambda: parse_enable_barge(None))
    barge_min_words: int = 1
    hangup_delay_ms: int | None = None  # None: the channel's own default

    @classmethod
    def from_params(
        cls,
        params: Any = None,
        *,
        languages: Sequence[Any] = (),
        hints: Sequence[Any] = (),
        env: Mapping[str, str] | None = None,
    ) -> SpeechSettings:
        """From `ai.params` (a model or a mapping), `ai.languages`, `ai.hints` and `env`.

        Raises SpeechError naming the parameter when a value is unusable.
        """
        values = _as_dict(params)
        env = env or {}
        first = languages[0] if languages else None
        return cls(
            end_of_speech_timeout=_milliseconds(values.get("end_of_speech_timeout")),
            language=_text(_field(first, "code"), "languages[0].code") or "en-US",
            voice=_text(_field(first, "voice"), "languages[0].voice"),
            hints=tuple(_hint_words(hints)),
            stt_base_url=_url(values.get("stt_base_url"), "stt_base_url")
            or env.get("CALLGATE_STT_URL")
            or None,
            tts_base_url=_url(values.get("tts_base_url"), "tts_base_url")
            or env.get("CALLGATE_TTS_URL")
            or None,
            stt_model=_text(values.get("stt_model"), "stt_model") or "whisper-1",
            tts_model=_text(values.get("tts_model"), "tts_model") or "tts-1",
            tts_voice=_text(values.get("tts_voice"), "tts_voice"),
            tts_engine=_engine(values.get("tts_engine")),
            enable_barge=_barge(values.get("enable_barge")),
            barge_min_words=_min_words(values.get("barge_min_words")),
            hangup_delay_ms=_optional_ms(values.get("hangup_delay_ms"), "hangup_delay_ms"),
        )

    @property
    def whisper_language(self) -> str:
        """ISO 639-1 code for Whisper ("en" for "en-US")."""
        return self.language.split("-")[0].split("_")[0].lower()

    @property
    def espeak_voice(self) -> str:
        """espeak-ng voice name for the language ("en-us" for "en-US")."""
        return self.language.replace("_", "-").lower()

    @property
    def initial_prompt(self) -> str | None:
        """Hints as Whisper's initial prompt: words it should expect."""
        return ", ".join(self.hints) if self.hints else None


def _as_dict(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    dump = getattr(params, "model_dump", None)
    if callable(dump):
        return dict(dump())
    if isinstance(params, Mapping):
        return dict(params)
    raise SpeechError(f"params must be a mapping, not {type(params).__name__}")


def _field(item: Any, name: str) -> Any:
    if item is None:
        return None
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


def _text(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SpeechError(f"{name} must be a string, not {value!r}")
    return value.strip() or None


def _url(value: Any, name: str) -> str | None:
    text = _text(value, f"params.{name}")
    if text is not None and not text.lower().startswith(("http://", "https://")):
        raise SpeechError(f"params.{name} must be an http(s) URL, not {text!r}")
    return text


def _number(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise SpeechError(f"params.{name} must be a number, not {value!r}")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise SpeechError(f"params.{name} must be a number, not {value!r}") from None
    if number != number or number < 0:
        raise SpeechError(f"params.{name} must be 0 or more, not {value!r}")
    return int(number)


def _optional_ms(value: Any, name: str) -> int | None:
    return None if value is None or value == "" else _number(value, name)


def _milliseconds(value: Any) -> int:
    if value is None or value == "":
        return DEFAULT_END_OF_SPEECH_MS
    ms = _number(value, "end_of_speech_timeout")
    if ms < 20:
        raise SpeechError(f"params.end_of_speech_timeout is in milliseconds (at least 20), not {value!r}")
    return ms


def _min_words(value: Any) -> int:
    if value is None or value == "":
        return 1
    return max(1, _number(value, "barge_min_words"))


def _engine(value: Any) -> str:
    text = _text(value, "params.tts_engine")
    if text is None:
        return "espeak"
    if text.lower() not in TTS_ENGINES:
        raise SpeechError(f"params.tts_engine must be one of {', '.join(TTS_ENGINES)}, not {text!r}")
    return text.lower()


def _barge(value: Any) -> BargeMode:
    try:
        return parse_enable_barge(value)
    except ValueError as exc:
        raise SpeechError(f"params.enable_barge: {exc}") from None


def _hint_words(hints: Sequence[Any]) -> list[str]:
    """SignalWire hints are strings or objects with a `hint` (plus pattern/replace for its ASR)."""
    words = []
    for hint in hints:
        text = hint if isinstance(hint, str) else _field(hint, "hint")
        if isinstance(text, str) and text.strip():
            words.append(text.strip())
    return words
