"""The post_conversation report SignalWire sends to `post_prompt_url`, built from a call record.

Fields follow seed 004's example (which uses `caller_id_num`) plus what SignalWire's
post-prompt callback spec adds (`caller_id_number`, `raw_call_log`, `call_timeline`, `times`,
`call_ended_by`, `global_data`, the `total_*` counts…). `idempotency_key` is callgate's: the same
value is sent in the `Idempotency-Key` header, so a receiver can drop a report it already has.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from callgate.records.model import CallRecord, PostPromptData

PAYLOAD_VERSION = "2.0"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def idempotency_key(record: CallRecord) -> str:
    """Stable for a call's report: re-running the post-call work for the same call gives the same key."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"callgate:{record.call_id}:{record.ai_session_id}:report"))


def build_payload(record: CallRecord, key: str) -> dict[str, Any]:
    minutes = max(1, math.ceil(record.duration_seconds() / 60))
    post_prompt_data = record.post_prompt_data or PostPromptData()
    payload: dict[str, Any] = {
        "action": "post_conversation",
        "version": PAYLOAD_VERSION,
        "content_type": "text/swaig",
        "content_disposition": "Conversation Log",
        "conversation_type": "voice",
        "app_name": record.app_name,
        "project_id": record.project_id,
        "space_id": record.space_id,
        "call_id": record.call_id,
        "ai_session_id": record.ai_session_id,
        "caller_id_name": record.caller_id_name,
        "caller_id_num": record.caller_id_num,
        "caller_id_number": record.caller_id_num,
        "call_start_date": record.call_start_date,
        "call_answer_date": record.call_answer_date,
        "call_end_date": record.call_end_date,
        "ai_start_date": record.ai_start_date,
        "ai_end_date": record.ai_end_date,
        "call_log": record.call_log,
        "raw_call_log": record.raw_call_log,
        "call_timeline": _call_timeline(record),
        "swaig_log": record.swaig_log,
        "times": [timing.model_dump(exclude={"first_token_time"}) for timing in record.times],
        "SWMLVars": record.swml_vars,
        "SWMLCall": {
            "call_id": record.call_id,
            "from": record.caller_id_num,
            "to": record.to_number,
            "direction": "inbound",
            "type": "phone",
        },
        "global_data": {
            **record.global_data,
            "caller_id_name": record.caller_id_name,
            "caller_id_number": record.caller_id_num,
        },
        "post_prompt_data": post_prompt_data.model_dump(),
        "total_minutes": minutes,
        "total_input_tokens": record.total_input_tokens,
        "total_output_tokens": record.total_output_tokens,
        "total_wire_input_tokens": record.total_input_tokens,
        "total_wire_output_tokens": record.total_output_tokens,
        "total_wire_input_tokens_per_minute": round(record.total_input_tokens / minutes, 2),
        "total_wire_output_tokens_per_minute": round(record.total_output_tokens / minutes, 2),
        "idempotency_key": key,
    }
    if record.conversation_id:
        payload["conversation_id"] = record.conversation_id
    if record.ended_by:
        payload["call_ended_by"] = record.ended_by
    if record.hard_timeout:
        payload["hard_timeout"] = True
    return payload


# Timeline kinds that map onto SignalWire's conversation event types.
_TYPES = {"caller-said": "user_input", "assistant": "ai_response", "function-result": "tool_result"}


def _call_timeline(record: CallRecord) -> list[dict[str, Any]]:
    """The call's events as SignalWire's flat, typed stream (`type`, `ts` in µs, the event's data)."""
    origin = record.call_start_date
    out: list[dict[str, Any]] = []
    for event in record.timeline:
        entry: dict[str, Any] = {"type": _TYPES.get(event.kind, event.kind.replace("-", "_"))}
        if origin:
            entry["ts"] = origin + round(event.t * 1_000_000)
        entry.update({k: v for k, v in event.data.items() if k not in ("type", "ts")})
        out.append(entry)
    return out
