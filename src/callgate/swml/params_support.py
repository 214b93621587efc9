"""Which SignalWire `ai.params` callgate acts on, and why it leaves the others alone.

Every name of SignalWire's AIParams (`known.KNOWN_PARAMS`) is either honoured (callgate does what
SignalWire documents) or accepted and ignored, with the reason. An ignored parameter that changes
what the caller hears is a warning in `callgate validate` whenever the document sets it to anything
but SignalWire's default, so a document never silently behaves differently on callgate.
docs/signalwire-parameters.md is the same table for people.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Ignored:
    reason: str
    audible: bool  # the caller would hear a difference from SignalWire
    default: Any = None  # SignalWire's default: setting it to this changes nothing


HONOURED: frozenset[str] = frozenset(
    {
        "ai_model",
        "app_name",
        "attention_timeout",
        "attention_timeout_prompt",
        "background_file",
        "background_file_loops",
        "barge_min_words",
        "conscience",
        "conversation_id",
        "conversation_sliding_window",
        "convo",
        "enable_barge",
        "end_of_speech_timeout",
        "hard_stop_prompt",
        "hard_stop_time",
        "inactivity_timeout",
        "initial_sleep_ms",
        "local_tz",
        "max_response_tokens",
        "persist_global_data",
        "save_conversation",
        "static_greeting",
        "static_greeting_no_barge",
        "swaig_allow_swml",
        "swaig_post_conversation",
        "swaig_post_swml_vars",
        "swaig_set_global_data",
        "wait_for_user",
    }
)

_TURNS = "callgate's turn-taking is VAD end-of-speech after end_of_speech_timeout"
_VOICE = "callgate's speech engines have no such voice control"

IGNORED: dict[str, Ignored] = {
    "acknowledge_interruptions": Ignored("the agent does not acknowledge crosstalk on its own", True, False),
    "ai_name": Ignored(
        "used only by enable_pause / speak_when_spoken_to, which callgate does not run", False
    ),
    "ai_volume": Ignored(_VOICE, True, 0),
    "asr_diarize": Ignored("one speaker per leg; no diarization", False, False),
    "asr_smart_format": Ignored("transcripts come as the STT engine writes them", False, False),
    "asr_speaker_affinity": Ignored("one speaker per leg; no diarization", False, False),
    "audible_debug": Ignored("no spoken debugging", True, False),
    "audible_latency": Ignored("no spoken latency figures", True, False),
    "auto_correct": Ignored("transcripts are not rewritten by a model", False, False),
    "background_file_volume": Ignored("background audio plays at the channel's level", True, 0),
    "barge_functions": Ignored("functions always finish when the caller barges in", True, True),
    "barge_match_string": Ignored("barge-in is by word count (barge_min_words), not by a phrase", True),
    "cache_mode": Ignored("no response cache", False, False),
    "debug": Ignored("see the call's timeline (callgate calls show)", False),
    "debug_webhook_level": Ignored("no debug webhook; the timeline records every event", False),
    "debug_webhook_url": Ignored("no debug webhook; the timeline records every event", False),
    "digit_terminators": Ignored("each DTMF digit reaches the model as it is pressed", True),
    "digit_timeout": Ignored("each DTMF digit reaches the model as it is pressed", True, 3000),
    "direction": Ignored("the channel knows the direction", False),
    "eleven_labs_similarity": Ignored(_VOICE, True, 0.75),
    "eleven_labs_stability": Ignored(_VOICE, True, 0.5),
    "enable_accounting": Ignored("no usage accounting beyond the report's token counts", False, False),
    "enable_inner_dialog": Ignored("no background inner-dialog model", True, False),
    "enable_pause": Ignored("no pause_conversation function; the agent always listens", True, False),
    "enable_text_normalization": Ignored("numbers are spoken as the TTS engine reads them", True, "both"),
    "enable_thinking": Ignored("no extra thinking turn", True, False),
    "enable_turn_detection": Ignored(_TURNS, True, "both"),
    "enable_vision": Ignored("voice calls only: no get_visual_input", False, False),
    "energy_level": Ignored(_TURNS, True, 52.0),
    "first_word_timeout": Ignored(_TURNS, True, 1000),
    "function_wait_for_talking": Ignored(
        "functions start at once; a filler is spoken only if they are slow", True, False
    ),
    "functions_on_no_response": Ignored(
        "silence leads to attention_timeout / inactivity_timeout only", True, False
    ),
    "hold_music": Ignored("the hold action plays the channel's own hold music", True),
    "hold_on_process": Ignored("fillers, not music, cover slow functions", True, False),
    "inner_dialog_model": Ignored("no background inner-dialog model", False),
    "inner_dialog_prompt": Ignored("no background inner-dialog model", False),
    "inner_dialog_synced": Ignored("no background inner-dialog model", False, False),
    "input_poll_freq": Ignored(
        "no check_for_input polling (validate warns about a check_for_input function)", False, 2000
    ),
    "interrupt_on_noise": Ignored("only speech (VAD + words) barges in", True, False),
    "interrupt_prompt": Ignored("crosstalk is not reported to the model", True),
    "languages_enabled": Ignored("has no effect on SignalWire either", False),
    "llm_diarize_aware": Ignored("one speaker per leg; no diarization", False, False),
    "max_emotion": Ignored(_VOICE, True, 30),
    "openai_asr_engine": Ignored("the STT engine is callgate's own setting (CALLGATE_STT)", False),
    "outbound_attention_timeout": Ignored("outbound calls use attention_timeout too", True, 120000),
    "pom_format": Ignored("POM is always rendered as markdown", False, "markdown"),
    "redact_prompt": Ignored("no redaction: keep secrets out of transcripts yourself", False),
    "speak_when_spoken_to": Ignored("the agent answers every utterance", True, False),
    "speech_event_timeout": Ignored(_TURNS, True, 1400),
    "speech_gen_quick_stops": Ignored(_TURNS, True, 3),
    "speech_timeout": Ignored(_TURNS, True, 60000),
    "start_paused": Ignored("the agent starts listening at once", True, False),
    "summary_mode": Ignored("the post_prompt answer is reported as SignalWire's default mode", False),
    "swaig_allow_settings": Ignored(
        "`settings` actions are accepted and not applied (validate warns about each in the document)",
        False,
        True,
    ),
    "thinking_model": Ignored("no extra thinking turn", False),
    "transfer_summary": Ignored(
        "a warm transfer's summary agent briefs the supervisor instead", False, False
    ),
    "transparent_barge": Ignored("barge-in always cuts the agent (enable_barge)", True, True),
    "transparent_barge_max_time": Ignored("barge-in always cuts the agent (enable_barge)", True, 3000),
    "tts_number_format": Ignored("numbers are spoken as the TTS engine reads them", True, "international"),
    "turn_detection_min_length": Ignored(_TURNS, True, 0),
    "turn_detection_timeout": Ignored(_TURNS, True),
    "turn_filler_every_n": Ignored("no backchannel fillers while the caller talks", True, 1),
    "turn_filler_min_ms": Ignored("no backchannel fillers while the caller talks", True, 0),
    "turn_filler_sources": Ignored("no backchannel fillers while the caller talks", True, "spell,number"),
    "utility_model": Ignored("no background utility model", False),
    "vad_config": Ignored("callgate's VAD has its own settings", True),
    "verbose_logs": Ignored("see the call's timeline", False, False),
    "video_idle_file": Ignored("voice calls only", False),
    "video_listening_file": Ignored("voice calls only", False),
    "video_talking_file": Ignored("voice calls only", False),
    "vision_model": Ignored("voice calls only", False),
    "wake_prefix": Ignored("used only by enable_pause / speak_when_spoken_to", False),
}


def _same(value: Any, default: Any) -> bool:
    if value is None:
        return True
    if isinstance(default, bool) or default is None:
        text = str(value).strip().lower()
        off = {"false", "0", "", "none", "off"}
        on = {"true", "1", "on", "yes"}
        if default is None:
            return text in off or value == [] or value == {}
        return (text in on) if default else (text in off)
    if isinstance(default, int | float) and not isinstance(value, bool):
        try:
            return float(value) == float(default)
        except (TypeError, ValueError):
            return False
    return str(value).strip().lower() == str(default).lower()


def audible_difference(name: str, value: Any) -> str | None:
    """Why `params.<name>: value` makes a call sound different on callgate, or None."""
    ignored = IGNORED.get(name)
    if ignored is None or not ignored.audible or _same(value, ignored.default):
        return None
    return ignored.reason
