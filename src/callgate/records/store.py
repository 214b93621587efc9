"""Where call records and pending reports live: one SQLite file (WAL) by default, or PostgreSQL
for several workers sharing one store. Same schema and SQL on both (`migrations.py`).

The API is synchronous: every operation is one short local transaction (async code calls it off
the event loop, through `records.async_store`). A call's record is written at call end together
with its post-call job (`post_jobs`: the post_prompt, then queueing the report); the job's result
and its report are written in one transaction, so a report exists before anyone delivers it.

Rows being worked on carry a lease: `lease_owner` (a worker id, `records.leases`) and
`lease_until`. Only the holder settles a row; a lease that ran out, or whose holder's process on
this host is dead, is taken over. A database error of any kind becomes a `StoreError`.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callgate.records.leases import holder_gone, new_worker_id
from callgate.records.migrations import MIGRATIONS
from callgate.records.model import CallRecord
from callgate.redact import redact

ENV_DB = "CALLGATE_DB"

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
DONE = "done"  # a post-call job whose report (if any) is queued

# What a conversation remembers (params.save_conversation) is bounded: the newest text wins.
MEMORY_CHARS = 4000

# How long a write waits for another process's lock (SQLite's database lock, PostgreSQL's row
# locks) before the store counts as unusable (then live calls spool their records: `records.spool`).
SQLITE_BUSY_SECONDS = 10.0

log = logging.getLogger(__name__)


class StoreError(Exception):
    """The store cannot be opened or used (bad URL, missing driver, unreachable server, a lock
    held elsewhere, a broken file). The message is one line and never holds the store URL's
    password (nor any other credential)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(" ".join(message.split())))


@dataclass(frozen=True)
class NewReport:
    """A report to deliver, written together with its call record."""

    idempotency_key: str
    url: str
    payload: dict[str, Any]
    auth_user: str | None = None
    auth_password: str | None = None
    max_attempts: int = 8
    # The private-address guard for `url`: "strict", or "exempt" when the document allowed it
    # (params.swaig_allow_private_urls, the host that served it, a scenario's passthrough).
    guard: str | None = None


@dataclass(frozen=True)
class Report:
    """One outbox row. `lease_until` in the future means a worker is delivering it right now."""

    idempotency_key: str
    call_id: str
    url: str
    auth_user: str | None
    auth_password: str | None
    payload: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    next_attempt_at: float
    lease_until: float | None
    last_status: int | None
    last_error: str | None
    created_at: float
    delivered_at: float | None
    guard: str | None = None  # see NewReport.guard; None for reports written before it existed
    lease_owner: str | None = None  # the worker delivering it right now (with lease_until)


@dataclass(frozen=True)
class PostJob:
    """A call's post-call work (`records.owner` runs it). `spec` is what it needs, as JSON: the
    post_prompt's instructions, messages and model, and the report's URL (see `post_call`)."""

    call_id: str
    state: str  # pending | done
    spec: dict[str, Any]
    attempts: int
    lease_owner: str | None
    lease_until: float | None
    error: str | None


_JOB_COLUMNS = "call_id, state, spec, attempts, lease_owner, lease_until, error"


def _job(row: Sequence[Any]) -> PostJob:
    values = list(row)
    values[2] = json.loads(values[2])
    return PostJob(*values)


def _free(lease_owner: str | None, lease_until: float | None, now: float) -> bool:
    """A row nobody works on: never leased, its lease ran out, or its holder's process is dead."""
    return lease_until is None or lease_until <= now or holder_gone(lease_owner)


@dataclass(frozen=True)
class CallSummary:
    call_id: str
    started_us: int
    ended_us: int
    caller: str
    callee: str
    ended_reason: str | None
    report_status: str | None  # the call's report: pending | delivered | failed, None without one
    transfer_result: str | None = None  # the last transfer's outcome, None without a transfer


_REPORT_COLUMNS = (
    "idempotency_key, call_id, url, auth_user, auth_password, payload, status, attempts, max_attempts, "
    "next_attempt_at, lease_until, last_status, last_error, created_at, delivered_at, guard, lease_owner"
)


def _report(row: Sequence[Any]) -> Report:
    values = list(row)
    values[5] = json.loads(values[5])
    return Report(*values)


class Store(ABC):
    """The record store. Subclasses supply a connection and transactions; the SQL is shared."""

    # Row locking for claims on servers that support it (PostgreSQL).
    _lock_suffix = ""
    # The driver's errors (a lock held elsewhere, a broken file, a lost server): StoreError.
    _db_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        # This store's worker id: the lease owner of the rows it claims.
        self.owner = new_worker_id()
        self.async_face: Any = None  # its `records.async_store.AsyncStore`, once async code uses it

    # ------------------------------------------------------------ dialect hooks

    @abstractmethod
    def _transaction(self, write: bool = True) -> Any:
        """A context manager yielding a cursor; commits on success, rolls back on error. A read
        (`write=False`) does not wait for another writer's lock where the database allows."""

    def _sql(self, sql: str) -> str:
        return sql

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[Any]:
        try:
            with self._lock, self._transaction(write) as cursor:
                yield _Cursor(cursor, self._sql)
        except self._db_errors as exc:
            raise StoreError(f"the store {self.url} is unusable: {exc}") from exc

    # ------------------------------------------------------------ schema

    def migrate(self) -> int:
        """Apply the migrations not applied yet; returns the schema version. An up-to-date store
        is only read (opening it does not wait for another process's write lock)."""
        try:
            current = self.schema_version()
        except StoreError:
            current = 0  # no schema yet (or unreadable: the write below says why)
        if current >= MIGRATIONS[-1][0]:
            return current
        with self._tx() as cur:
            self._lock_schema(cur)
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
            cur.execute("SELECT version FROM schema_migrations")
            done = {int(row[0]) for row in cur.fetchall()}
            for version, statements in MIGRATIONS:
                if version in done:
                    continue
                for statement in statements:
                    cur.execute(statement)
                cur.execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))
                done.add(version)
            return max(done)

    def _lock_schema(self, cur: _Cursor) -> None:
        """Serialises concurrent migrations (a no-op where the transaction already does)."""
        return None

    def schema_version(self) -> int:
        with self._tx(write=False) as cur:
            cur.execute("SELECT MAX(version) FROM schema_migrations")
            row = cur.fetchone()
            return int(row[0]) if row and row[0] is not None else 0

    # ------------------------------------------------------------ calls

    def save_call(
        self,
        record: CallRecord,
        report: NewReport | None = None,
        *,
        now: float = 0.0,
        job: dict[str, Any] | None = None,
        replace: bool = True,
    ) -> None:
        """Insert or replace the call's record and, in the same transaction, queue its report
        (a report already queued under the same key is left as it is) and its post-call `job`
        (one already there is left as it is). `replace=False` keeps a record already stored
        (a spooled copy never overwrites what its job has since added)."""
        with self._tx() as cur:
            self._write_call(cur, record, replace=replace)
            if job is not None:
                cur.execute("SELECT 1 FROM post_jobs WHERE call_id = ?", (record.call_id,))
                if not cur.fetchone():
                    cur.execute(
                        "INSERT INTO post_jobs (call_id, state, spec, attempts, created_at, updated_at) "
                        "VALUES (?, ?, ?, 0, ?, ?)",
                        (record.call_id, PENDING, json.dumps(job), now, now),
                    )
            if report is not None:
                self._queue_report(cur, record.call_id, report, now)

    def _write_call(self, cur: _Cursor, record: CallRecord, *, replace: bool = True) -> None:
        cur.execute("SELECT 1 FROM calls WHERE call_id = ?", (record.call_id,))
        values = (
            record.call_start_date,
            record.call_end_date,
            record.caller_id_num,
            record.to_number,
            record.ended_reason,
            record.transfers[-1].result if record.transfers else None,
            record.model_dump_json(),
        )
        if cur.fetchone():
            if replace:
                cur.execute(
                    "UPDATE calls SET started_us = ?, ended_us = ?, caller = ?, callee = ?, "
                    "ended_reason = ?, transfer_result = ?, record = ? WHERE call_id = ?",
                    (*values, record.call_id),
                )
        else:
            cur.execute(
                "INSERT INTO calls (started_us, ended_us, caller, callee, ended_reason, transfer_result, "
                "record, call_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, record.call_id),
            )

    def _queue_report(self, cur: _Cursor, call_id: str, report: NewReport, now: float) -> None:
        cur.execute("SELECT 1 FROM outbox WHERE idempotency_key = ?", (report.idempotency_key,))
        if cur.fetchone():
            return
        cur.execute(
            "INSERT INTO outbox (idempotency_key, call_id, url, auth_user, auth_password, payload, "
            "status, attempts, max_attempts, next_attempt_at, created_at, guard) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
            (
                report.idempotency_key,
                call_id,
                report.url,
                report.auth_user,
                report.auth_password,
                json.dumps(report.payload),
                PENDING,
                report.max_attempts,
                now,
                now,
                report.guard,
            ),
        )

    # ------------------------------------------------------------ post-call jobs

    def job(self, call_id: str) -> PostJob | None:
        with self._tx(write=False) as cur:
            cur.execute(f"SELECT {_JOB_COLUMNS} FROM post_jobs WHERE call_id = ?", (call_id,))
            row = cur.fetchone()
        return _job(row) if row is not None else None

    def pending_jobs(self, call_ids: Sequence[str] | None = None) -> list[PostJob]:
        with self._tx(write=False) as cur:
            cur.execute(
                f"SELECT {_JOB_COLUMNS} FROM post_jobs WHERE state = ? ORDER BY created_at", (PENDING,)
            )
            jobs = [_job(row) for row in cur.fetchall()]
        return [j for j in jobs if call_ids is None or j.call_id in call_ids]

    def claim_job(
        self,
        now: float,
        lease_seconds: float,
        *,
        call_ids: Sequence[str] | None = None,
        owner: str | None = None,
    ) -> PostJob | None:
        """Take one pending post-call job nobody works on (see `_free`); it counts an attempt."""
        holder = owner or self.owner
        with self._tx() as cur:
            cur.execute(
                "SELECT call_id, lease_owner, lease_until FROM post_jobs WHERE state = ? "
                "ORDER BY created_at LIMIT 200" + self._lock_suffix,
                (PENDING,),
            )
            free = [
                row[0]
                for row in cur.fetchall()
                if _free(row[1], row[2], now) and (call_ids is None or row[0] in call_ids)
            ]
            if not free:
                return None
            cur.execute(
                "UPDATE post_jobs SET lease_owner = ?, lease_until = ?, attempts = attempts + 1, "
                "updated_at = ? WHERE call_id = ?",
                (holder, now + lease_seconds, now, free[0]),
            )
            cur.execute(f"SELECT {_JOB_COLUMNS} FROM post_jobs WHERE call_id = ?", (free[0],))
            return _job(cur.fetchone())

    def finish_job(
        self,
        call_id: str,
        record: CallRecord,
        report: NewReport | None,
        *,
        now: float,
        memory: tuple[str, str] | None = None,
        owner: str | None = None,
    ) -> bool:
        """The job's result: the updated record, its report and what its conversation now
        remembers (`memory`: conversation id, this call's summary), in one transaction with the
        job's end. False (nothing written) when `owner` no longer holds the job."""
        holder = owner or self.owner
        with self._tx() as cur:
            cur.execute("SELECT state, lease_owner FROM post_jobs WHERE call_id = ?", (call_id,))
            row = cur.fetchone()
            if row is None or row[0] != PENDING or row[1] != holder:
                log.warning("post-call job of call %s is no longer this worker's: result dropped", call_id)
                return False
            self._write_call(cur, record)
            if report is not None:
                self._queue_report(cur, call_id, report, now)
            if memory is not None:
                self._remember(cur, memory[0], memory[1], now)
            cur.execute(
                "UPDATE post_jobs SET state = ?, lease_owner = NULL, lease_until = NULL, error = NULL, "
                "updated_at = ? WHERE call_id = ?",
                (DONE, now, call_id),
            )
            return True

    def release_job(self, call_id: str, error: str, *, retry_at: float, owner: str | None = None) -> None:
        """A failed try: the job waits until `retry_at` (only its holder may say so)."""
        with self._tx() as cur:
            cur.execute(
                "UPDATE post_jobs SET lease_owner = NULL, lease_until = ?, error = ?, updated_at = ? "
                "WHERE call_id = ? AND state = ? AND lease_owner = ?",
                (retry_at, error, retry_at, call_id, PENDING, owner or self.owner),
            )

    def get_call(self, call_id: str) -> CallRecord | None:
        """The record of `call_id`, or of the only call whose id starts with it."""
        with self._tx(write=False) as cur:
            cur.execute("SELECT record FROM calls WHERE call_id = ?", (call_id,))
            row = cur.fetchone()
            if row is None and call_id:
                cur.execute(
                    "SELECT record FROM calls WHERE substr(call_id, 1, ?) = ? LIMIT 2",
                    (len(call_id), call_id),
                )
                rows = cur.fetchall()
                row = rows[0] if len(rows) == 1 else None
        return CallRecord.model_validate_json(row[0]) if row is not None else None

    def list_calls(
        self,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
        ended_reason: str | None = None,
        number: str | None = None,
        transfer_result: str | None = None,
        report_status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[CallSummary]:
        """Newest first. `number` matches the caller or the called number (substring);
        `report_status` is the newest report's state (`none`: calls without a report)."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if since_us is not None:
            where.append("c.started_us >= ?")
            params.append(since_us)
        if until_us is not None:
            where.append("c.started_us < ?")
            params.append(until_us)
        if ended_reason:
            where.append("c.ended_reason = ?")
            params.append(ended_reason)
        if number:
            where.append("(c.caller LIKE ? OR c.callee LIKE ?)")
            params += [f"%{number}%", f"%{number}%"]
        if transfer_result:
            where.append("c.transfer_result = ?")
            params.append(transfer_result)
        newest_report = (
            "(SELECT o.status FROM outbox o WHERE o.call_id = c.call_id ORDER BY o.created_at DESC LIMIT 1)"
        )
        if report_status == "none":
            where.append(f"{newest_report} IS NULL")
        elif report_status:
            where.append(f"{newest_report} = ?")
            params.append(report_status)
        params += [limit, offset]
        sql = (
            "SELECT c.call_id, c.started_us, c.ended_us, c.caller, c.callee, c.ended_reason, "
            f"{newest_report}, c.transfer_result FROM calls c WHERE {' AND '.join(where)} "
            "ORDER BY c.started_us DESC, c.call_id LIMIT ? OFFSET ?"
        )
        with self._tx(write=False) as cur:
            cur.execute(sql, tuple(params))
            return [CallSummary(*row) for row in cur.fetchall()]

    # ------------------------------------------------------------ conversation memory

    def save_conversation(self, conversation_id: str, summary: str, *, now: float) -> None:
        """Keep `summary` as what conversation `conversation_id` remembers (params.save_conversation)."""
        with self._tx() as cur:
            self._keep_summary(cur, conversation_id, summary, now)

    def _keep_summary(self, cur: _Cursor, conversation_id: str, summary: str, now: float) -> None:
        cur.execute("DELETE FROM conversations WHERE conversation_id = ?", (conversation_id,))
        cur.execute(
            "INSERT INTO conversations (conversation_id, summary, updated_at) VALUES (?, ?, ?)",
            (conversation_id, summary, now),
        )

    def _remember(self, cur: _Cursor, conversation_id: str, summary: str, now: float) -> None:
        """A call's summary joins what its conversation remembers (bounded: the newest text wins)."""
        cur.execute("SELECT summary FROM conversations WHERE conversation_id = ?", (conversation_id,))
        row = cur.fetchone()
        earlier = str(row[0]) if row is not None else ""
        combined = f"{earlier}\n{summary.strip()}".strip()[-MEMORY_CHARS:]
        self._keep_summary(cur, conversation_id, combined, now)

    def recall_conversation(self, conversation_id: str) -> str | None:
        with self._tx(write=False) as cur:
            cur.execute("SELECT summary FROM conversations WHERE conversation_id = ?", (conversation_id,))
            row = cur.fetchone()
        return str(row[0]) if row is not None else None

    # ------------------------------------------------------------ figures

    def day_counts(self, since_us: int) -> list[tuple[str, str | None, str | None, int]]:
        """Calls started since `since_us`, counted by UTC day (ISO date), ended reason and transfer
        outcome. Grouped here rather than in SQL: SQLite and PostgreSQL spell dates differently."""
        with self._tx(write=False) as cur:
            cur.execute(
                "SELECT started_us, ended_reason, transfer_result FROM calls WHERE started_us >= ?",
                (since_us,),
            )
            rows = cur.fetchall()
        counts: dict[tuple[str, str | None, str | None], int] = {}
        for started_us, reason, transfer in rows:
            day = datetime.fromtimestamp(int(started_us) / 1_000_000, UTC).date().isoformat()
            key = (day, reason, transfer)
            counts[key] = counts.get(key, 0) + 1
        return [
            (day, reason, transfer, count)
            for (day, reason, transfer), count in sorted(counts.items(), key=str)
        ]

    def report_counts(self) -> dict[str, int]:
        """Reports in the outbox by state (pending, delivered, failed)."""
        with self._tx(write=False) as cur:
            cur.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status")
            return {str(status): int(count) for status, count in cur.fetchall()}

    # ------------------------------------------------------------ the outbox

    def reports(self, call_id: str | None = None, status: str | None = None) -> list[Report]:
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if call_id is not None:
            where.append("call_id = ?")
            params.append(call_id)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        with self._tx(write=False) as cur:
            cur.execute(
                f"SELECT {_REPORT_COLUMNS} FROM outbox WHERE {' AND '.join(where)} ORDER BY created_at",
                tuple(params),
            )
            return [_report(row) for row in cur.fetchall()]

    def claim_due(
        self,
        now: float,
        lease_seconds: float,
        *,
        limit: int = 10,
        call_ids: Sequence[str] | None = None,
        owner: str | None = None,
    ) -> list[Report]:
        """Take up to `limit` pending reports that are due and nobody works on (see `_free`):
        each gets its own lease held by `owner` (default: this store) and counts one more
        attempt. A deliverer takes one at a time, so no report waits on a lease while others
        are posted."""
        holder = owner or self.owner
        where = "status = ? AND next_attempt_at <= ?"
        params: list[Any] = [PENDING, now]
        if call_ids is not None:
            if not call_ids:
                return []
            where += f" AND call_id IN ({', '.join('?' for _ in call_ids)})"
            params += list(call_ids)
        with self._tx() as cur:
            cur.execute(
                f"SELECT idempotency_key, lease_owner, lease_until FROM outbox WHERE {where} "
                "ORDER BY next_attempt_at LIMIT 200" + self._lock_suffix,
                tuple(params),
            )
            keys = [row[0] for row in cur.fetchall() if _free(row[1], row[2], now)][:limit]
            claimed = []
            for key in keys:
                cur.execute(
                    "UPDATE outbox SET lease_owner = ?, lease_until = ?, attempts = attempts + 1 "
                    "WHERE idempotency_key = ?",
                    (holder, now + lease_seconds, key),
                )
                cur.execute(f"SELECT {_REPORT_COLUMNS} FROM outbox WHERE idempotency_key = ?", (key,))
                claimed.append(_report(cur.fetchone()))
            return claimed

    def mark_delivered(self, key: str, status: int, now: float, *, owner: str | None = None) -> bool:
        """Settle a report as delivered; only its lease holder may (False and a log line otherwise)."""
        with self._tx() as cur:
            cur.execute(
                "UPDATE outbox SET status = ?, last_status = ?, last_error = NULL, delivered_at = ?, "
                "lease_until = NULL, lease_owner = NULL "
                "WHERE idempotency_key = ? AND status = ? AND lease_owner = ?",
                (DELIVERED, status, now, key, PENDING, owner or self.owner),
            )
            done = bool(cur.rowcount > 0)
        if not done:
            log.warning("report %s: not settled as delivered, this worker no longer holds it", key)
        return done

    def mark_attempt_failed(
        self,
        key: str,
        *,
        status: int | None,
        error: str,
        retry_at: float | None,
        owner: str | None = None,
    ) -> bool:
        """Record a failed attempt: retry at `retry_at`, or give up (`failed`) when it is None.
        Only the report's lease holder may (False and a log line otherwise)."""
        holder = owner or self.owner
        with self._tx() as cur:
            if retry_at is None:
                cur.execute(
                    "UPDATE outbox SET status = ?, last_status = ?, last_error = ?, lease_until = NULL, "
                    "lease_owner = NULL WHERE idempotency_key = ? AND status = ? AND lease_owner = ?",
                    (FAILED, status, error, key, PENDING, holder),
                )
            else:
                cur.execute(
                    "UPDATE outbox SET next_attempt_at = ?, last_status = ?, last_error = ?, "
                    "lease_until = NULL, lease_owner = NULL "
                    "WHERE idempotency_key = ? AND status = ? AND lease_owner = ?",
                    (retry_at, status, error, key, PENDING, holder),
                )
            done = bool(cur.rowcount > 0)
        if not done:
            log.warning("report %s: failed attempt not recorded, this worker no longer holds it", key)
        return done

    def retry_failed(self, now: float, call_id: str | None = None) -> int:
        """Put failed reports back in the queue with a fresh set of attempts; returns how many."""
        sql = "UPDATE outbox SET status = ?, attempts = 0, next_attempt_at = ? WHERE status = ?"
        params: list[Any] = [PENDING, now, FAILED]
        if call_id is not None:
            sql += " AND call_id = ?"
            params.append(call_id)
        with self._tx() as cur:
            cur.execute(sql, tuple(params))
            return int(cur.rowcount or 0)

    def next_wake(self, call_ids: Sequence[str] | None = None, *, include_jobs: bool = False) -> float | None:
        """When the earliest pending report (and post-call job, with `include_jobs`) can next be
        tried (None: nothing pending). A lease whose holder is gone counts as free now."""
        pending = [r for r in self.reports(status=PENDING) if call_ids is None or r.call_id in call_ids]
        times = [
            r.next_attempt_at if holder_gone(r.lease_owner) else max(r.next_attempt_at, r.lease_until or 0.0)
            for r in pending
        ]
        if include_jobs:
            times += [
                0.0 if holder_gone(j.lease_owner) else (j.lease_until or 0.0)
                for j in self.pending_jobs(call_ids)
            ]
        return min(times) if times else None


class _Cursor:
    """A DB-API cursor that rewrites `?` placeholders for the dialect."""

    def __init__(self, cursor: Any, sql: Any) -> None:
        self._cursor = cursor
        self._rewrite = sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cursor.execute(self._rewrite(sql), tuple(params))

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)


class SqliteStore(Store):
    """One file in WAL mode (several processes may share it); `:memory:` for a throwaway store."""

    _db_errors = (sqlite3.Error,)

    def __init__(self, path: str) -> None:
        super().__init__(f"sqlite:///{path}" if path != ":memory:" else "sqlite://:memory:")
        try:
            if path != ":memory:":
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(Path(path).expanduser()) if path != ":memory:" else path,
                isolation_level=None,
                check_same_thread=False,
                timeout=SQLITE_BUSY_SECONDS,
            )
            if path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA synchronous=FULL")  # a committed report survives a power cut
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the SQLite store {path!r}: {exc}") from exc

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        cursor = self._conn.cursor()
        # IMMEDIATE takes the write lock up front: two workers cannot claim the same report. A
        # read takes none (WAL readers go on while another process writes).
        cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield cursor
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()


class PostgresStore(Store):
    _lock_suffix = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - psycopg is a dependency
            raise StoreError("PostgreSQL stores need the psycopg package") from exc
        self._db_errors = (psycopg.Error,)
        self._conn = self._connect()

    def _connect(self) -> Any:
        import psycopg

        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            # A row another session holds is waited for as long as SQLite waits for its lock.
            conn.execute(f"SET lock_timeout = {int(SQLITE_BUSY_SECONDS * 1000)}")
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL {self.url}: {exc}") from exc
        return conn

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        if self._conn.broken:  # the server went away: connect again (it may be back)
            self._conn = self._connect()
        with self._conn.transaction(), self._conn.cursor() as cursor:
            yield cursor

    def _lock_schema(self, cur: _Cursor) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(7472698)")

    def close(self) -> None:
        self._conn.close()


def default_store_url(env: dict[str, str] | None = None) -> str:
    """`CALLGATE_DB`, else `$XDG_DATA_HOME/callgate/calls.db` (`~/.local/share/callgate/calls.db`)."""
    environ = os.environ if env is None else env
    if environ.get(ENV_DB):
        return environ[ENV_DB]
    data_home = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(data_home) / "callgate" / "calls.db")


def sqlite_path(url: str) -> str | None:
    """The file (or `:memory:`) of a SQLite store URL; None for any other kind of store."""
    if url.startswith("sqlite://"):
        rest = url.removeprefix("sqlite://")
        return ":memory:" if rest in ("", "/:memory:", ":memory:") else rest.removeprefix("/")
    return None if "://" in url else url


def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """Open a store by URL: `postgresql://…` / `postgres://…`, `sqlite:///path`, a plain path or
    `:memory:`. The schema is brought up to date unless `migrate` is False."""
    target = url or default_store_url()
    store: Store
    path = sqlite_path(target)
    if target.startswith(("postgresql://", "postgres://")):
        store = PostgresStore(target)
    elif path is not None:
        store = SqliteStore(path)
    else:
        raise StoreError(f"unknown store URL {target!r}: use a file path, sqlite:///path or postgresql://…")
    if migrate:
        try:
            store.migrate()
        except Exception as exc:  # not a database, or a schema we cannot bring up to date
            store.close()
            raise StoreError(f"cannot prepare the store {target!r}: {exc}") from exc
    return store
