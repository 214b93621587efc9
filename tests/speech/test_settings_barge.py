"""Speech settings from a document, and the barge-in decision."""

from __future__ import annotations

import pytest

from callgate.speech.barge import BargeDetector, BargeMode, count_words, parse_enable_barge
from callgate.speech.base import SpeechError
from callgate.speech.settings import SpeechSettings
from callgate.swml.models import AI
from callgate.telephony.base import CallerSpeech, Dtmf, SpeechStarted


def test_defaults() -> None:
    s = SpeechSettings.from_params(None)
    assert s.end_of_speech_timeout == 700
    assert (s.language, s.whisper_language, s.espeak_voice) == ("en-US", "en", "en-us")
    assert s.enable_barge == BargeMode(complete=True, partial=True) and s.barge_min_words == 1
    assert s.stt_base_url is None and s.tts_base_url is None and s.initial_prompt is None
    assert s.hangup_delay_ms is None  # the channel keeps its own default (200 ms)


def test_from_a_parsed_document() -> None:
    ai = AI.model_validate(
        {
            "params": {
                "end_of_speech_timeout": "450",
                "enable_barge": "partial",
                "barge_min_words": 2,
                "stt_base_url": "http://127.0.0.1:8001/v1",
                "tts_voice": "nova",
                "hangup_delay_ms": "350",
            },
            "languages": [{"name": "German", "code": "de-DE", "voice": "de+f2"}],
            "hints": ["Callgate", {"hint": "SWAIG", "pattern": "swag", "replace": "SWAIG"}, 7],
        }
    )
    env = {"CALLGATE_STT_URL": "http://ignored/v1", "CALLGATE_TTS_URL": "http://127.0.0.1:8002/v1"}
    s = SpeechSettings.from_params(ai.params, languages=ai.languages, hints=ai.hints, env=env)
    assert s.end_of_speech_timeout == 450
    assert (s.language, s.voice, s.whisper_language, s.espeak_voice) == ("de-DE", "de+f2", "de", "de-de")
    assert s.enable_barge == BargeMode(complete=False, partial=True) and s.barge_min_words == 2
    assert s.stt_base_url == "http://127.0.0.1:8001/v1"  # the document wins over the environment
    assert s.tts_base_url == "http://127.0.0.1:8002/v1"
    assert s.tts_voice == "nova"
    assert s.initial_prompt == "Callgate, SWAIG"
    assert s.hangup_delay_ms == 350


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"end_of_speech_timeout": "soon"}, "end_of_speech_timeout must be a number"),
        ({"end_of_speech_timeout": 0.7}, "in milliseconds"),
        ({"end_of_speech_timeout": -5}, "0 or more"),
        ({"barge_min_words": True}, "barge_min_words must be a number"),
        ({"enable_barge": "sometimes"}, "enable_barge"),
        ({"enable_barge": 3}, "enable_barge"),
        ({"stt_base_url": "ftp://x"}, "stt_base_url must be an http"),
        ({"tts_base_url": 5}, "tts_base_url must be a string"),
        ({"tts_engine": "festival"}, "tts_engine must be one of espeak, piper"),
        ({"hangup_delay_ms": -1}, "hangup_delay_ms must be 0 or more"),
    ],
)
def test_bad_values_name_the_parameter(params: dict[str, object], message: str) -> None:
    with pytest.raises(SpeechError, match=message):
        SpeechSettings.from_params(params)


@pytest.mark.parametrize(
    ("value", "complete", "partial"),
    [
        (None, True, True),
        (False, False, False),
        ("", False, False),
        ("false", False, False),
        (True, True, True),
        ("true", True, True),
        ("complete", True, False),
        ("partial", False, True),
        ("complete,partial", True, True),
        ("partial, complete", True, True),
    ],
)
def test_enable_barge_values(value: object, complete: bool, partial: bool) -> None:
    mode = parse_enable_barge(value)
    assert (mode.complete, mode.partial, mode.enabled) == (complete, partial, complete or partial)


def test_word_count() -> None:
    assert count_words("") == 0
    assert count_words("  ...  ") == 0
    assert count_words("Wait, don't — stop!") == 3
    assert count_words("4 5 6") == 3


def test_partial_with_enough_words_barges() -> None:
    barge = BargeDetector(parse_enable_barge(True), min_words=2)
    assert barge.wants_partials
    assert not barge.feed(SpeechStarted())  # VAD alone is not enough
    assert not barge.feed(CallerSpeech("wait", final=False))
    assert barge.feed(CallerSpeech("wait stop", final=False))
    assert barge.heard == "wait stop"
    assert barge.feed(Dtmf("1"))  # stays decided until reset
    barge.reset()
    assert not barge.barged and barge.heard == ""


def test_words_without_an_onset_in_this_stretch_do_not_barge() -> None:
    barge = BargeDetector(parse_enable_barge(True))
    assert not barge.feed(CallerSpeech("hello there", final=True))  # began before the agent spoke


def test_complete_mode_ignores_partials() -> None:
    barge = BargeDetector(parse_enable_barge("complete"))
    assert not barge.wants_partials
    barge.feed(SpeechStarted())
    assert not barge.feed(CallerSpeech("stop stop stop", final=False))
    assert barge.feed(CallerSpeech("stop", final=True))


def test_partial_mode_ignores_finals() -> None:
    barge = BargeDetector(parse_enable_barge("partial"))
    barge.feed(SpeechStarted())
    assert not barge.feed(CallerSpeech("stop", final=True))
    barge.feed(SpeechStarted())
    assert barge.feed(CallerSpeech("stop", final=False))


def test_off_never_barges() -> None:
    barge = BargeDetector(parse_enable_barge(""), min_words=1)
    barge.feed(SpeechStarted())
    assert not barge.feed(CallerSpeech("stop talking", final=False))
    assert not barge.feed(CallerSpeech("stop talking", final=True))
    assert not barge.wants_partials


def test_a_final_below_the_word_count_ends_that_utterance() -> None:
    barge = BargeDetector(parse_enable_barge(True), min_words=3)
    barge.feed(SpeechStarted())
    assert not barge.feed(CallerSpeech("uh huh", final=True))
    assert not barge.feed(CallerSpeech("no wait please", final=False))  # no new onset yet
    barge.feed(SpeechStarted())
    assert barge.feed(CallerSpeech("no wait please", final=False))
