"""The post-call work inside scenario runs: the record the engine writes, and its report's fate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from callgate.records.model import CallRecord
from callgate.records.payload import build_payload, idempotency_key
from callgate.runtime.scenario_call import ScenarioCall, build_call_under_test
from callgate.scenario.runner import run_scenario_file

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"


def run(name: str | Path) -> tuple[CallRecord, list[str]]:
    calls: list[ScenarioCall] = []

    def factory(**kwargs: Any) -> ScenarioCall:
        call = build_call_under_test(**kwargs)
        calls.append(call)
        return call

    result = run_scenario_file(EXAMPLES / name if isinstance(name, str) else name, factory=factory)
    assert result.passed, result.failures or result.error
    (call,) = calls
    assert call.record is not None
    assert result.outcome is not None
    return call.record, [event.kind for event in result.outcome.timeline.events]


def test_the_record_of_a_call_with_a_delivered_report() -> None:
    record, kinds = run("report_delivered.yaml")
    assert record.caller_id_num == "+15551230000" and record.to_number == "+15559870000"
    assert record.ended_reason == "assistant-ended-call" and record.ended_by == "assistant"
    assert 0 < record.call_start_date <= record.call_answer_date <= record.ai_start_date
    assert record.ai_start_date <= record.ai_end_date <= record.call_end_date
    assert [t.response for t in record.times] == [
        "Rosa's Bakery, how can I help?",
        "Yes, sourdough is ready from 8 am. Goodbye!",
    ]
    assert record.total_output_tokens > 0
    assert record.post_prompt is not None and record.post_prompt.startswith("Summarize the call")
    assert record.post_prompt_data is not None
    assert record.post_prompt_data.parsed == [{"intent": "opening hours", "resolved": True}]
    assert record.post_prompt_url == "https://crm.example.com/calls/report"
    assert any(e.kind == "caller-said" for e in record.timeline)
    assert [k for k in kinds if k.startswith("report-")] == ["report-delivered"]


def test_a_stub_less_post_prompt_url_is_retried_on_virtual_time_then_kept_failed() -> None:
    record, kinds = run("voicemail.yaml")  # https://example.com/my-api has no stub: 404
    attempts = [k for k in kinds if k.startswith("report-")]
    assert attempts == ["report-retry"] * 7 + ["report-failed"]
    assert record.post_prompt_url == "https://example.com/my-api"


def test_the_post_prompt_reads_the_calls_clock_in_strftime_tz(tmp_path: Path) -> None:
    # The scenario's virtual clock starts at 2026-01-01 00:00 UTC: 18:00 on New Year's Eve in Chicago.
    scenario = tmp_path / "dated_summary.yaml"
    scenario.write_text(
        """
name: the post_prompt's @{strftime_tz} is the call's time
agent:
  version: 1.0.0
  sections:
    main:
      - ai:
          prompt: {text: "You answer the phone."}
          post_prompt: {text: "Summarize the call of @{strftime_tz America/Chicago %Y-%m-%d} in one line."}
llm:
  agent: [{text: "Hello."}]
  post_prompt: [{text: "A short call."}]
turns: [hangup]
expect: {ended: customer-ended-call}
"""
    )
    record, _ = run(scenario)
    assert record.post_prompt == "Summarize the call of 2025-12-31 in one line."


def test_a_transfer_lands_in_the_record() -> None:
    record, _ = run("expressions_transfer.yaml")
    assert [(t.to, t.result) for t in record.transfers] and record.transfers[0].result == "completed"
    assert record.swaig_log and record.swaig_log[0]["command_name"] == "transfer"


def test_payload_keys_are_stable_and_optional_fields_appear_only_when_set() -> None:
    base = CallRecord(call_id="c", ai_session_id="s", call_start_date=1_000_000, call_end_date=200_000_000)
    assert idempotency_key(base) == idempotency_key(base.model_copy())
    assert idempotency_key(base) != idempotency_key(base.model_copy(update={"call_id": "d"}))
    payload = build_payload(base, "k")
    assert "conversation_id" not in payload and "hard_timeout" not in payload
    assert payload["total_minutes"] == 4  # 199 s, rounded up
    assert payload["post_prompt_data"] == {"raw": "", "substituted": "", "parsed": []}
    full = build_payload(
        base.model_copy(update={"conversation_id": "conv", "hard_timeout": True, "ended_by": "system"}), "k"
    )
    assert (full["conversation_id"], full["hard_timeout"], full["call_ended_by"]) == ("conv", True, "system")
