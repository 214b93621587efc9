"""The record kept for every call, and the answer to the post_prompt.

Times are Unix epoch microseconds (as SignalWire reports them); `0` means "never happened".
Everything is plain JSON so the same record goes into SQLite, PostgreSQL and `calls export`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class PostPromptData(BaseModel):
    """The model's answer to the post_prompt: as produced, without its JSON, and the JSON parsed."""

    raw: str = ""
    substituted: str = ""
    parsed: list[Any] = Field(default_factory=list)


class ResponseTiming(BaseModel):
    """One generated reply (SignalWire's `times` entry)."""

    response: str = ""
    response_word_count: int = 0
    answer_time: float = 0.0  # seconds from the request to the last token
    token_time: float = 0.0  # seconds from the first token to the last
    tokens: int = 0
    avg_tps: float = 0.0
    tps: float = 0.0
    first_token_time: float | None = None  # seconds from the request to the first token


class TransferEntry(BaseModel):
    to: str
    mode: str
    result: str
    reason: str | None = None


class TimelineEntry(BaseModel):
    t: float  # seconds since the call started
    kind: str
    leg: str = "caller"
    data: dict[str, Any] = Field(default_factory=dict)


class UtteranceEntry(BaseModel):
    """Agent speech as it was played on a leg: seconds since the call started, cut by a hang-up,
    hold or barge-in when `cut` (then `text` holds only the words heard)."""

    text: str
    start: float
    end: float
    leg: str = "caller"
    cut: bool = False


class CallRecord(BaseModel):
    """Everything that happened on one call."""

    call_id: str
    ai_session_id: str = ""
    conversation_id: str | None = None
    app_name: str = "swml app"
    project_id: str = ""
    space_id: str = ""
    caller_id_num: str = ""
    caller_id_name: str = ""
    to_number: str = ""
    call_start_date: int = 0
    call_answer_date: int = 0
    ai_start_date: int = 0
    ai_end_date: int = 0
    call_end_date: int = 0
    ended_reason: str | None = None
    ended_by: str | None = None  # user | assistant | system
    hard_timeout: bool = False
    call_log: list[dict[str, Any]] = Field(default_factory=list)
    raw_call_log: list[dict[str, Any]] = Field(default_factory=list)
    swaig_log: list[dict[str, Any]] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    utterances: list[UtteranceEntry] = Field(default_factory=list)
    transfers: list[TransferEntry] = Field(default_factory=list)
    total_input_tokens: int = 0
    total_output_tokens: int = 0
    times: list[ResponseTiming] = Field(default_factory=list)
    swml_vars: dict[str, Any] = Field(default_factory=dict)
    global_data: dict[str, Any] = Field(default_factory=dict)
    post_prompt: str | None = None  # the instructions the post_prompt ran with
    post_prompt_data: PostPromptData | None = None
    post_prompt_url: str | None = None  # credentials never kept here

    def duration_seconds(self) -> float:
        if not self.call_start_date or not self.call_end_date:
            return 0.0
        return max(0, self.call_end_date - self.call_start_date) / 1_000_000


def ended_by(reason: str | None) -> str | None:
    """Who ended the call, in SignalWire's `call_ended_by` words."""
    if reason is None:
        return None
    if reason == "customer-ended-call":
        return "user"
    if reason.startswith("assistant-"):
        return "assistant"
    return "system"
