"""Reports reach a real loopback receiver: SignalWire's payload, basic auth, the idempotency key,
retries with backoff, and a visible `failed` for a receiver that never accepts."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from callgate.records.model import CallRecord
from callgate.records.outbox import DeliveryWorker, RetryPolicy
from callgate.records.store import DELIVERED, FAILED, NewReport, Store
from callgate.scenario.runner import run_scenario_file
from callgate.telephony.clock import SystemClock

from .receiver import Receiver, running_receiver

# Every field of seed 004's post_prompt_url example, plus what SignalWire's post-prompt spec adds.
SEED_FIELDS = {
    "action", "ai_end_date", "ai_session_id", "ai_start_date", "app_name", "call_answer_date",
    "call_end_date", "call_id", "call_log", "call_start_date", "caller_id_name", "caller_id_num",
    "content_disposition", "content_type", "post_prompt_data", "project_id", "space_id", "SWMLVars",
    "swaig_log", "total_input_tokens", "total_output_tokens", "version",
}  # fmt: skip
SPEC_FIELDS = {
    "caller_id_number", "conversation_type", "SWMLCall", "raw_call_log", "call_timeline", "times",
    "call_ended_by", "global_data", "total_minutes", "total_wire_input_tokens", "total_wire_output_tokens",
}  # fmt: skip

AGENT = """\
sections:
  main:
    - ai:
        prompt:
          text: You take orders for Rosa's Bakery. Say goodbye and hang up when the caller is done.
        post_prompt:
          text: Summarize the call as JSON.
          temperature: 0.2
          top_p: 0.3
        post_prompt_url: {url}
        post_prompt_auth_user: crm
        post_prompt_auth_password: "p@ss:word"
        global_data: {{shop: rosa}}
        SWAIG:
          functions:
            - function: opening_hours
              purpose: tell the opening hours
              argument: {{type: object, properties: {{day: {{type: string}}}}}}
              data_map:
                expressions:
                  - {{string: "${{args.day}}", pattern: ".*", output: {{response: "8 to 18"}}}}
"""

SCENARIO = """\
name: report to a loopback receiver
agent: agent.yaml
call: {{from: "+15551230000", to: "+15559870000", caller_name: Ann}}
passthrough: ["{base}/*"]
llm:
  agent:
    - text: "Rosa's Bakery, hello!"
    - tool_calls: [{{name: opening_hours, arguments: {{day: monday}}}}]
    - text: "We open 8 to 18. Goodbye!"
      tool_calls: [{{name: hangup, arguments: {{}}}}]
  post_prompt:
    - text: 'Caller asked for hours. {{"intent": "hours", "resolved": true}}'
turns:
  - user: "When are you open on Monday?"
expect:
  ended: assistant-ended-call
  http: [{{method: POST, url: "{base}/report", json: {{action: post_conversation}}}}]
"""


def run_call_against(receiver: Receiver, tmp_path: Path) -> None:
    base = receiver.url.rsplit("/", 1)[0]
    (tmp_path / "agent.yaml").write_text(AGENT.format(url=receiver.url))
    (tmp_path / "s.yaml").write_text(SCENARIO.format(base=base))
    result = run_scenario_file(tmp_path / "s.yaml")
    assert result.passed, result.failures or result.error


def test_a_finished_call_posts_signalwires_report_with_basic_auth(tmp_path: Path) -> None:
    with running_receiver() as receiver:
        run_call_against(receiver, tmp_path)
    assert len(receiver.requests) == 1
    (request,) = receiver.requests
    body = request.body
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"crm:p@ss:word").decode()
    assert request.headers["idempotency-key"] == body["idempotency_key"]
    assert request.headers["content-type"] == "application/json"
    assert set(body) >= SEED_FIELDS | SPEC_FIELDS
    assert body["action"] == "post_conversation"
    assert (body["caller_id_num"], body["caller_id_name"]) == ("+15551230000", "Ann")
    assert body["post_prompt_data"] == {
        "raw": 'Caller asked for hours. {"intent": "hours", "resolved": true}',
        "substituted": "Caller asked for hours.",
        "parsed": [{"intent": "hours", "resolved": True}],
    }
    # Times are epoch microseconds, in order.
    assert 0 < body["call_start_date"] <= body["call_answer_date"] <= body["ai_start_date"]
    assert body["ai_start_date"] <= body["ai_end_date"] <= body["call_end_date"]
    assert body["call_start_date"] > 1_000_000_000_000_000
    assert [m["role"] for m in body["call_log"]][:3] == ["system", "assistant", "user"]
    (entry,) = [e for e in body["swaig_log"] if e["command_name"] == "opening_hours"]
    assert entry["command_arg"] == '{"day": "monday"}' or '"monday"' in entry["command_arg"]
    assert body["global_data"]["shop"] == "rosa"
    assert body["call_ended_by"] == "assistant"
    assert body["SWMLCall"]["from"] == "+15551230000" and body["SWMLCall"]["to"] == "+15559870000"
    assert len(body["times"]) == 3 and body["times"][0]["response"] == "Rosa's Bakery, hello!"
    assert {"user_input", "ai_response", "tool_result"} <= {e["type"] for e in body["call_timeline"]}
    assert "p@ss:word" not in str(body)  # the password only ever travels as the auth header


def record(call_id: str = "call-1") -> CallRecord:
    return CallRecord(call_id=call_id, call_start_date=1, call_end_date=2)


def queue(store: Store, url: str, key: str = "key-1", max_attempts: int = 8) -> None:
    payload = {"action": "post_conversation", "idempotency_key": key}
    store.save_call(record(), NewReport(key, url, payload, "u", "p", max_attempts), now=SystemClock().time())


FAST = RetryPolicy(base=0.01, factor=1.5, cap=0.05, max_attempts=5, timeout=10, lease=30)


async def test_a_receiver_failing_three_times_then_accepting_gets_it_once(store: Store) -> None:
    with running_receiver(Receiver(fail_first=3)) as receiver:
        queue(store, receiver.url)
        async with httpx.AsyncClient() as http:
            await DeliveryWorker(store, http, SystemClock(), FAST).run_until_settled()
    (report,) = store.reports()
    assert (report.status, report.attempts, report.last_status) == (DELIVERED, 4, 200)
    assert len(receiver.requests) == 4
    assert {r.headers["idempotency-key"] for r in receiver.requests} == {"key-1"}
    assert list(receiver.accepted) == ["key-1"]


@pytest.mark.parametrize("status", [404, 500])
async def test_a_receiver_that_never_accepts_leaves_it_failed_not_gone(store: Store, status: int) -> None:
    with running_receiver(Receiver(always_status=status)) as receiver:
        queue(store, receiver.url, max_attempts=3)
        async with httpx.AsyncClient() as http:
            await DeliveryWorker(store, http, SystemClock(), FAST).run_until_settled()
    assert len(receiver.requests) == 3
    (report,) = store.reports()
    assert (report.status, report.attempts, report.last_error) == (FAILED, 3, f"HTTP {status}")
    assert report.payload["action"] == "post_conversation"
    assert store.list_calls()[0].report_status == FAILED


async def test_an_unreachable_receiver_is_retried_then_failed(store: Store) -> None:
    with running_receiver() as receiver:
        dead_url = receiver.url
    queue(store, dead_url, max_attempts=2)  # nobody listens there any more
    async with httpx.AsyncClient() as http:
        await DeliveryWorker(store, http, SystemClock(), FAST).run_until_settled()
    (report,) = store.reports()
    assert report.status == FAILED and report.last_status is None
    assert report.last_error and "Connect" in report.last_error


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(base=2, factor=2, cap=10)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 10, 10]
