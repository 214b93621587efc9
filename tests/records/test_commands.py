"""`callgate calls list|show|export|deliver` against a real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from callgate.records.commands import parse_when, register
from callgate.records.model import CallRecord, PostPromptData, TimelineEntry, TransferEntry
from callgate.records.store import NewReport, open_store
from callgate.telephony.clock import SystemClock

from .receiver import running_receiver

app = typer.Typer()
register(app)
runner = CliRunner(env={"COLUMNS": "200"})

NOW = SystemClock().time()


def sample(call_id: str, *, reason: str, caller: str, minutes_ago: float) -> CallRecord:
    start = int((NOW - minutes_ago * 60) * 1_000_000)
    return CallRecord(
        call_id=call_id,
        caller_id_num=caller,
        caller_id_name="Ann",
        to_number="+15559870000",
        call_start_date=start,
        call_answer_date=start + 500_000,
        call_end_date=start + 42_000_000,
        ended_reason=reason,
        ended_by="user" if reason == "customer-ended-call" else "assistant",
        call_log=[
            {"role": "system", "content": "You are Frank."},
            {"role": "assistant", "content": "Hi, this is Frank."},
            {"role": "user", "content": "Put me through to sales."},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "transfer", "arguments": '{"target": "sales"}'}}],
            },
            {"role": "tool", "content": "transferred"},
        ],
        raw_call_log=[
            {"role": "assistant", "content": "Hi, this is Frank.", "timestamp": start + 1_000_000},
            {"role": "user", "content": "Put me through to sales.", "timestamp": start + 3_200_000},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "transfer", "arguments": '{"target": "sales"}'}}],
                "timestamp": start + 4_000_000,
            },
            {"role": "tool", "content": "transferred", "timestamp": start + 4_500_000},
        ],
        swaig_log=[{"command_name": "transfer", "command_arg": '{"target": "sales"}', "epoch_time": 1}],
        transfers=[TransferEntry(to="+15550002222", mode="blind", result="completed")],
        timeline=[
            TimelineEntry(t=0.0, kind="answered"),
            TimelineEntry(t=3.2, kind="caller-said", data={"text": "Put me through to sales."}),
            TimelineEntry(t=5.0, kind="transfer-completed", data={"to": "+15550002222"}),
        ],
        post_prompt_data=PostPromptData(raw='{"intent": "sales"}', parsed=[{"intent": "sales"}]),
        total_input_tokens=120,
        total_output_tokens=30,
    )


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "calls.db")
    with open_store(path) as store:
        store.save_call(
            sample("aaaa-1111", reason="assistant-forwarded-call", caller="+15551230000", minutes_ago=5)
        )
        store.save_call(
            sample("bbbb-2222", reason="customer-ended-call", caller="+15554440000", minutes_ago=300),
            NewReport("k-b", "http://127.0.0.1:9/gone", {"action": "post_conversation"}, "u", "secret-pw", 1),
            now=NOW,
        )
        (claimed,) = store.claim_due(NOW, 30)
        store.mark_attempt_failed(claimed.idempotency_key, status=None, error="ConnectError", retry_at=None)
    return path


def test_list_shows_calls_newest_first_with_report_state(db: str) -> None:
    result = runner.invoke(app, ["calls", "list", "--db", db])
    assert result.exit_code == 0, result.output
    assert result.output.index("aaaa-111") < result.output.index("bbbb-222")
    assert "failed" in result.output and "assistant-forwarded-call" in result.output


def test_list_filters_and_json(db: str) -> None:
    def ids(*args: str) -> list[str]:
        result = runner.invoke(app, ["calls", "list", "--db", db, "--json", *args])
        assert result.exit_code == 0, result.output
        return [row["call_id"] for row in json.loads(result.output)]

    assert ids() == ["aaaa-1111", "bbbb-2222"]
    assert ids("--since", "1h") == ["aaaa-1111"]
    assert ids("--until", "1h") == ["bbbb-2222"]
    assert ids("--reason", "customer-ended-call") == ["bbbb-2222"]
    assert ids("--number", "4440000") == ["bbbb-2222"]
    assert ids("--since", "2000-01-01") == ["aaaa-1111", "bbbb-2222"]


def test_list_rejects_a_bad_time(db: str) -> None:
    result = runner.invoke(app, ["calls", "list", "--db", db, "--since", "yesterday-ish"])
    assert result.exit_code != 0
    assert "ISO" in result.output


def test_show_tells_what_happened_at_a_glance(db: str) -> None:
    result = runner.invoke(app, ["calls", "show", "bbbb", "--db", db])
    assert result.exit_code == 0, result.output
    out = result.output
    for expected in (
        "bbbb-2222",
        "+15554440000 (Ann) → +15559870000",
        "customer-ended-call by user",
        "42.0 s",
        "Hi, this is Frank.",
        "Put me through to sales.",
        "3.2s caller  Put me through to sales.",
        'transfer({"target": "sales"})',
        "completed",
        "failed",
        "ConnectError",
        "transfer-completed",
        '"intent": "sales"',
        "120 in / 30 out",
    ):
        assert expected in out, expected
    assert out.index("Hi, this is Frank.") < out.index("Put me through to sales.")
    assert "secret-pw" not in out


def test_show_unknown_call(db: str) -> None:
    result = runner.invoke(app, ["calls", "show", "nope", "--db", db])
    assert result.exit_code == 1


def test_export_writes_json_without_credentials(db: str, tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    result = runner.invoke(app, ["calls", "export", "--db", db, "-o", str(target)])
    assert result.exit_code == 0, result.output
    exported = json.loads(target.read_text())
    assert [c["call_id"] for c in exported] == ["aaaa-1111", "bbbb-2222"]
    assert exported[1]["reports"][0]["status"] == "failed"
    assert exported[1]["call_log"][2] == {"role": "user", "content": "Put me through to sales."}
    assert "secret-pw" not in target.read_text()
    one = runner.invoke(app, ["calls", "export", "aaaa", "--db", db])
    assert [c["call_id"] for c in json.loads(one.output)] == ["aaaa-1111"]
    missing = runner.invoke(app, ["calls", "export", "zzz", "--db", db])
    assert missing.exit_code == 1


def test_deliver_sends_pending_and_requeues_failed(db: str) -> None:
    with running_receiver() as receiver, open_store(db) as store:
        store.save_call(
            sample("cccc-3333", reason="customer-ended-call", caller="+1555", minutes_ago=1),
            NewReport("k-c", receiver.url, {"action": "post_conversation"}),
            now=NOW,
        )
        result = runner.invoke(app, ["calls", "deliver", "--db", db, "--no-wait"])
        assert result.exit_code == 0, result.output
        assert [r.body for r in receiver.requests] == [{"action": "post_conversation"}]
        assert "cccc-333 → " in result.output and ": delivered" in result.output  # progress per attempt
        assert {r.call_id: r.status for r in store.reports()} == {
            "bbbb-2222": "failed",
            "cccc-3333": "delivered",
        }
        again = runner.invoke(app, ["calls", "deliver", "--db", db, "--no-wait", "--retry-failed"])
        assert "requeued 1 failed report" in again.output
        assert len(receiver.requests) == 1  # the delivered one is not sent again


def test_a_bad_store_url_is_a_clear_error() -> None:
    result = runner.invoke(app, ["calls", "list", "--db", "mysql://x/y"])
    assert result.exit_code == 2
    assert "unknown store URL" in result.output


def test_parse_when() -> None:
    assert parse_when("2h", 10_000.0) == (10_000 - 7200) * 1_000_000
    assert parse_when("1d", 100_000.0) == (100_000 - 86400) * 1_000_000
    assert parse_when("1970-01-01T00:01:00", 0) == 60_000_000
    assert parse_when("1970-01-01T01:00:00+01:00", 0) == 0
