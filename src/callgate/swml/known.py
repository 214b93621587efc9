"""Names SignalWire documents that callgate's models do not type, so they are not reported as unknown.

Copied (as plain names) from the JSON Schema that the `signalwire-agents` package ships — the code must
not depend on that dev-only package at run time.
"""

from __future__ import annotations

# `ai.params` properties of SignalWire's schema (AIParams). The ones callgate acts on are also typed
# in `callgate.swml.models.Params`; the rest are accepted and passed through.
KNOWN_PARAMS: frozenset[str] = frozenset(
    {
        "acknowledge_interruptions",
        "ai_model",
        "ai_name",
        "ai_volume",
        "app_name",
        "asr_diarize",
        "asr_smart_format",
        "asr_speaker_affinity",
        "attention_timeout",
        "attention_timeout_prompt",
        "audible_debug",
        "audible_latency",
        "background_file",
        "background_file_loops",
        "background_file_volume",
        "barge_functions",
        "barge_match_string",
        "barge_min_words",
        "cache_mode",
        "conscience",
        "conversation_id",
        "conversation_sliding_window",
        "convo",
        "debug",
        "debug_webhook_level",
        "debug_webhook_url",
        "digit_terminators",
        "digit_timeout",
        "direction",
        "eleven_labs_similarity",
        "eleven_labs_stability",
        "enable_accounting",
        "enable_barge",
        "enable_inner_dialog",
        "enable_pause",
        "enable_thinking",
        "enable_turn_detection",
        "enable_vision",
        "end_of_speech_timeout",
        "energy_level",
        "first_word_timeout",
        "function_wait_for_talking",
        "functions_on_no_response",
        "hard_stop_prompt",
        "hard_stop_time",
        "hold_music",
        "hold_on_process",
        "inactivity_timeout",
        "initial_sleep_ms",
        "inner_dialog_model",
        "inner_dialog_prompt",
        "inner_dialog_synced",
        "input_poll_freq",
        "interrupt_on_noise",
        "interrupt_prompt",
        "languages_enabled",
        "llm_diarize_aware",
        "local_tz",
        "max_emotion",
        "max_response_tokens",
        "openai_asr_engine",
        "outbound_attention_timeout",
        "persist_global_data",
        "pom_format",
        "save_conversation",
        "speak_when_spoken_to",
        "speech_event_timeout",
        "speech_gen_quick_stops",
        "speech_timeout",
        "start_paused",
        "static_greeting",
        "static_greeting_no_barge",
        "summary_mode",
        "swaig_allow_settings",
        "swaig_allow_swml",
        "swaig_post_conversation",
        "swaig_post_swml_vars",
        "swaig_set_global_data",
        "thinking_model",
        "transfer_summary",
        "transparent_barge",
        "transparent_barge_max_time",
        "tts_number_format",
        "turn_detection_timeout",
        "vad_config",
        "verbose_logs",
        "video_idle_file",
        "video_listening_file",
        "video_talking_file",
        "vision_model",
        "wait_for_user",
        "wake_prefix",
        # Newer than the SDK's schema (signalwire/docs specs/swml/calling/Methods/ai/ai_params.tsp).
        "auto_correct",
        "enable_text_normalization",
        "redact_prompt",
        "turn_detection_min_length",
        "turn_filler_every_n",
        "turn_filler_min_ms",
        "turn_filler_sources",
        "utility_model",
    }
)

# SWML methods (verbs) of the schema.
KNOWN_VERBS: frozenset[str] = frozenset(
    {
        "ai", "amazon_bedrock", "answer", "cond", "connect", "denoise", "detect_machine", "enter_queue",
        "execute", "goto", "hangup", "join_conference", "join_room", "label", "live_transcribe",
        "live_translate", "pay", "play", "prompt", "receive_fax", "record", "record_call", "request",
        "return", "send_digits", "send_fax", "send_sms", "set", "sip_refer", "sleep", "stop_denoise",
        "stop_record_call", "stop_tap", "switch", "tap", "transfer", "unset", "user_event",
    }
)  # fmt: skip

# SWAIG.native_functions values.
KNOWN_NATIVE_FUNCTIONS: frozenset[str] = frozenset(
    {"check_time", "wait_seconds", "wait_for_user", "adjust_response_latency"}
)

# Keys of a data_map / webhook `output.action` entry: the schema's Action union, the seed's
# `back_to_back_functions`, and the actions the SDK's SwaigFunctionResult writes.
KNOWN_ACTIONS: frozenset[str] = frozenset(
    {
        "SWML", "back_to_back_functions", "change_context", "change_step", "context_switch", "hangup",
        "hold", "playback_bg", "say", "set_global_data", "set_meta_data", "stop", "stop_playback_bg",
        "toggle_functions", "unset_global_data", "unset_meta_data", "user_input", "transfer",
        "settings", "add_dynamic_hints", "clear_dynamic_hints", "end_of_speech_timeout",
        "speech_event_timeout", "functions_on_speaker_timeout", "extensive_data", "replace_in_history",
        "wait_for_user", "confirm",
    }
)  # fmt: skip

# Documented fields that a model keeps as extras rather than typing them, by model class name.
# Besides the schema's names, the SDK's DataMap writes `body` / `form_param` on webhooks and
# `nomatch-output` on expressions: documents it renders should not warn about them.
KNOWN_EXTRA_FIELDS: dict[str, frozenset[str]] = {
    "Language": frozenset({"model", "emotion", "speed", "params"}),
    "Webhook": frozenset({"body", "form_param"}),
    "Expression": frozenset({"nomatch-output"}),
}
