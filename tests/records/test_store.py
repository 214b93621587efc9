"""The store on SQLite and on a real PostgreSQL server: same schema, same behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest

from callgate.records.migrations import LATEST
from callgate.records.model import CallRecord
from callgate.records.store import (
    DELIVERED,
    FAILED,
    PENDING,
    NewReport,
    SqliteStore,
    Store,
    StoreError,
    open_store,
)


def record(call_id: str, start_s: float = 1_000.0, **fields: object) -> CallRecord:
    values: dict[str, object] = {
        "caller_id_num": "+15551230000",
        "to_number": "+15559870000",
        "call_start_date": int(start_s * 1_000_000),
        "call_end_date": int((start_s + 30) * 1_000_000),
        "ended_reason": "customer-ended-call",
        "call_log": [{"role": "user", "content": "hello"}],
    }
    values.update(fields)
    return CallRecord.model_validate({"call_id": call_id, **values})


def report(key: str = "key-1", url: str = "http://127.0.0.1:9/r", max_attempts: int = 3) -> NewReport:
    return NewReport(key, url, {"action": "post_conversation", "n": 1}, "user", "pw", max_attempts)


def test_migrations_are_versioned_and_idempotent(store_url: str) -> None:
    with open_store(store_url) as first:
        assert first.schema_version() == LATEST
    with open_store(store_url) as again:  # opening an up-to-date store changes nothing
        assert again.migrate() == LATEST
        assert again.schema_version() == LATEST


def test_record_round_trip_and_prefix_lookup(store: Store) -> None:
    original = record("abc-123", swaig_log=[{"command_name": "f", "command_arg": "{}"}])
    store.save_call(original)
    assert store.get_call("abc-123") == original
    assert store.get_call("abc") == original
    assert store.get_call("zzz") is None
    store.save_call(record("abd-999"))
    assert store.get_call("ab") is None  # ambiguous prefix


def test_saving_again_replaces_the_record_and_keeps_one_report(store: Store) -> None:
    store.save_call(record("c1"), report(), now=10.0)
    store.save_call(record("c1", ended_reason="silence-timed-out"), report(), now=20.0)
    got = store.get_call("c1")
    assert got is not None and got.ended_reason == "silence-timed-out"
    reports = store.reports("c1")
    assert [(r.status, r.created_at) for r in reports] == [(PENDING, 10.0)]
    assert reports[0].payload == {"action": "post_conversation", "n": 1}
    assert (reports[0].auth_user, reports[0].auth_password) == ("user", "pw")


def test_list_filters(store: Store) -> None:
    store.save_call(record("old", start_s=100, caller_id_num="+15550001111"))
    store.save_call(record("mid", start_s=200, ended_reason="assistant-ended-call"), report("k-mid"))
    store.save_call(record("new", start_s=300, to_number="+15550002222"))
    assert [c.call_id for c in store.list_calls()] == ["new", "mid", "old"]
    assert [c.call_id for c in store.list_calls(since_us=150_000_000)] == ["new", "mid"]
    assert [c.call_id for c in store.list_calls(until_us=250_000_000)] == ["mid", "old"]
    assert [c.call_id for c in store.list_calls(ended_reason="assistant-ended-call")] == ["mid"]
    assert [c.call_id for c in store.list_calls(number="0001111")] == ["old"]
    assert [c.call_id for c in store.list_calls(number="0002222")] == ["new"]
    assert [c.call_id for c in store.list_calls(limit=1)] == ["new"]
    by_id = {c.call_id: c for c in store.list_calls()}
    assert by_id["mid"].report_status == PENDING
    assert by_id["old"].report_status is None


def test_claims_lease_reports_so_a_second_worker_leaves_them_alone(store_url: str) -> None:
    with open_store(store_url) as a, open_store(store_url) as b:
        a.save_call(record("c1"), report(), now=0.0)
        claimed = a.claim_due(now=5.0, lease_seconds=30.0)
        assert [r.idempotency_key for r in claimed] == ["key-1"]
        assert claimed[0].attempts == 1
        assert b.claim_due(now=6.0, lease_seconds=30.0) == []  # leased by a
        assert b.next_wake() == 35.0
        again = b.claim_due(now=36.0, lease_seconds=30.0)  # a died: the lease ran out
        assert [r.attempts for r in again] == [2]


def test_not_due_before_next_attempt(store: Store) -> None:
    store.save_call(record("c1"), report(), now=100.0)
    assert store.claim_due(now=99.0, lease_seconds=10) == []
    (claimed,) = store.claim_due(now=100.0, lease_seconds=10)
    store.mark_attempt_failed(claimed.idempotency_key, status=503, error="HTTP 503", retry_at=150.0)
    assert store.claim_due(now=120.0, lease_seconds=10) == []
    (pending,) = store.reports(status=PENDING)
    assert (pending.last_status, pending.last_error, pending.lease_until) == (503, "HTTP 503", None)
    assert store.next_wake() == 150.0


def test_delivered_and_failed_are_final_and_visible(store: Store) -> None:
    store.save_call(record("ok"), report("k-ok"), now=0.0)
    store.save_call(record("bad"), report("k-bad"), now=0.0)
    for claimed in store.claim_due(now=1.0, lease_seconds=10):
        if claimed.call_id == "ok":
            store.mark_delivered(claimed.idempotency_key, 200, now=2.0)
        else:
            store.mark_attempt_failed(claimed.idempotency_key, status=404, error="HTTP 404", retry_at=None)
    # A late failure of a delivered report does not undo it.
    store.mark_attempt_failed("k-ok", status=500, error="late", retry_at=None)
    assert store.reports("ok")[0].status == DELIVERED
    assert store.reports("bad")[0].status == FAILED
    assert store.next_wake() is None
    assert store.claim_due(now=1_000.0, lease_seconds=10) == []
    assert store.retry_failed(now=5.0) == 1
    assert [r.attempts for r in store.claim_due(now=5.0, lease_seconds=10)] == [1]


def test_claims_can_be_limited_to_some_calls(store: Store) -> None:
    store.save_call(record("a"), report("k-a"), now=0.0)
    store.save_call(record("b"), report("k-b"), now=0.0)
    assert [r.call_id for r in store.claim_due(now=1.0, lease_seconds=5, call_ids=["b"])] == ["b"]
    assert store.claim_due(now=1.0, lease_seconds=5, call_ids=[]) == []


def test_bad_urls_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unknown store URL"):
        open_store("mysql://localhost/calls")
    with pytest.raises(StoreError, match="PostgreSQL"):
        open_store("postgresql://nobody@127.0.0.1:1/none")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, just some bytes" * 100)
    with pytest.raises(StoreError, match="not a database"):
        open_store(str(garbage))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open the SQLite store"):
        open_store(str(blocker / "calls.db"))


def test_sqlite_file_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "calls.db"
    with open_store(f"sqlite:///{path}") as store:
        assert isinstance(store, SqliteStore)
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert path.exists()


def test_memory_store(tmp_path: Path) -> None:
    with open_store(":memory:") as store:
        store.save_call(record("m"))
        assert store.get_call("m") is not None
