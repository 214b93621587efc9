"""Where call records and pending reports live: one SQLite file (WAL) by default, or PostgreSQL
for several workers sharing one store. Same schema and SQL on both (`migrations.py`).

The API is synchronous: every operation is one short local transaction. A report is written in
the same transaction as its call record, so it exists before anyone tries to deliver it.
"""

from __future__ import annotations

import json
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

from callgate.records.migrations import MIGRATIONS
from callgate.records.model import CallRecord
from callgate.redact import redact

ENV_DB = "CALLGATE_DB"

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


class StoreError(Exception):
    """The store cannot be opened or used (bad URL, missing driver, unreachable server). The
    message never holds the store URL's password (nor any other credential)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


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
    "next_attempt_at, lease_until, last_status, last_error, created_at, delivered_at, guard"
)


def _report(row: Sequence[Any]) -> Report:
    values = list(row)
    values[5] = json.loads(values[5])
    return Report(*values)


class Store(ABC):
    """The record store. Subclasses supply a connection and transactions; the SQL is shared."""

    # Row locking for claims on servers that support it (PostgreSQL).
    _lock_suffix = ""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()

    # ------------------------------------------------------------ dialect hooks

    @abstractmethod
    def _transaction(self) -> Any:
        """A context manager yielding a cursor; commits on success, rolls back on error."""

    def _sql(self, sql: str) -> str:
        return sql

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock, self._transaction() as cursor:
            yield _Cursor(cursor, self._sql)

    # ------------------------------------------------------------ schema

    def migrate(self) -> int:
        """Apply the migrations not applied yet; returns the schema version."""
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
        with self._tx() as cur:
            cur.execute("SELECT MAX(version) FROM schema_migrations")
            row = cur.fetchone()
            return int(row[0]) if row and row[0] is not None else 0

    # ------------------------------------------------------------ calls

    def save_call(self, record: CallRecord, report: NewReport | None = None, *, now: float = 0.0) -> None:
        """Insert or replace the call's record and, in the same transaction, queue its report
        (a report already queued under the same key is left as it is)."""
        with self._tx() as cur:
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
            if report is None:
                return
            cur.execute("SELECT 1 FROM outbox WHERE idempotency_key = ?", (report.idempotency_key,))
            if cur.fetchone():
                return
            cur.execute(
                "INSERT INTO outbox (idempotency_key, call_id, url, auth_user, auth_password, payload, "
                "status, attempts, max_attempts, next_attempt_at, created_at, guard) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
                (
                    report.idempotency_key,
                    record.call_id,
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

    def get_call(self, call_id: str) -> CallRecord | None:
        """The record of `call_id`, or of the only call whose id starts with it."""
        with self._tx() as cur:
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
        with self._tx() as cur:
            cur.execute(sql, tuple(params))
            return [CallSummary(*row) for row in cur.fetchall()]

    # ------------------------------------------------------------ conversation memory

    def save_conversation(self, conversation_id: str, summary: str, *, now: float) -> None:
        """Keep `summary` as what conversation `conversation_id` remembers (params.save_conversation)."""
        with self._tx() as cur:
            cur.execute("DELETE FROM conversations WHERE conversation_id = ?", (conversation_id,))
            cur.execute(
                "INSERT INTO conversations (conversation_id, summary, updated_at) VALUES (?, ?, ?)",
                (conversation_id, summary, now),
            )

    def recall_conversation(self, conversation_id: str) -> str | None:
        with self._tx() as cur:
            cur.execute("SELECT summary FROM conversations WHERE conversation_id = ?", (conversation_id,))
            row = cur.fetchone()
        return str(row[0]) if row is not None else None

    # ------------------------------------------------------------ figures

    def day_counts(self, since_us: int) -> list[tuple[str, str | None, str | None, int]]:
        """Calls started since `since_us`, counted by UTC day (ISO date), ended reason and transfer
        outcome. Grouped here rather than in SQL: SQLite and PostgreSQL spell dates differently."""
        with self._tx() as cur:
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
        with self._tx() as cur:
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
        with self._tx() as cur:
            cur.execute(
                f"SELECT {_REPORT_COLUMNS} FROM outbox WHERE {' AND '.join(where)} ORDER BY created_at",
                tuple(params),
            )
            return [_report(row) for row in cur.fetchall()]

    def claim_due(
        self, now: float, lease_seconds: float, *, limit: int = 10, call_ids: Sequence[str] | None = None
    ) -> list[Report]:
        """Take the pending reports that are due and not leased: each gets a lease (another worker
        leaves it alone until the lease runs out) and counts one more attempt."""
        where = "status = ? AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?)"
        params: list[Any] = [PENDING, now, now]
        if call_ids is not None:
            if not call_ids:
                return []
            where += f" AND call_id IN ({', '.join('?' for _ in call_ids)})"
            params += list(call_ids)
        with self._tx() as cur:
            cur.execute(
                f"SELECT idempotency_key FROM outbox WHERE {where} ORDER BY next_attempt_at LIMIT ?"
                + self._lock_suffix,
                (*params, limit),
            )
            keys = [row[0] for row in cur.fetchall()]
            claimed = []
            for key in keys:
                cur.execute(
                    "UPDATE outbox SET lease_until = ?, attempts = attempts + 1 WHERE idempotency_key = ?",
                    (now + lease_seconds, key),
                )
                cur.execute(f"SELECT {_REPORT_COLUMNS} FROM outbox WHERE idempotency_key = ?", (key,))
                claimed.append(_report(cur.fetchone()))
            return claimed

    def mark_delivered(self, key: str, status: int, now: float) -> None:
        with self._tx() as cur:
            cur.execute(
                "UPDATE outbox SET status = ?, last_status = ?, last_error = NULL, delivered_at = ?, "
                "lease_until = NULL WHERE idempotency_key = ? AND status <> ?",
                (DELIVERED, status, now, key, DELIVERED),
            )

    def mark_attempt_failed(
        self, key: str, *, status: int | None, error: str, retry_at: float | None
    ) -> None:
        """Record a failed attempt: retry at `retry_at`, or give up (`failed`) when it is None."""
        with self._tx() as cur:
            if retry_at is None:
                cur.execute(
                    "UPDATE outbox SET status = ?, last_status = ?, last_error = ?, lease_until = NULL "
                    "WHERE idempotency_key = ? AND status = ?",
                    (FAILED, status, error, key, PENDING),
                )
            else:
                cur.execute(
                    "UPDATE outbox SET next_attempt_at = ?, last_status = ?, last_error = ?, "
                    "lease_until = NULL "
                    "WHERE idempotency_key = ? AND status = ?",
                    (retry_at, status, error, key, PENDING),
                )

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

    def next_wake(self, call_ids: Sequence[str] | None = None) -> float | None:
        """When the earliest pending report can next be tried (None: nothing pending)."""
        pending = [r for r in self.reports(status=PENDING) if call_ids is None or r.call_id in call_ids]
        if not pending:
            return None
        return min(max(r.next_attempt_at, r.lease_until or 0.0) for r in pending)


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

    def __init__(self, path: str) -> None:
        super().__init__(f"sqlite:///{path}" if path != ":memory:" else "sqlite://:memory:")
        try:
            if path != ":memory:":
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(Path(path).expanduser()) if path != ":memory:" else path,
                isolation_level=None,
                check_same_thread=False,
                timeout=30.0,
            )
            if path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA synchronous=FULL")  # a committed report survives a power cut
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the SQLite store {path!r}: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        cursor = self._conn.cursor()
        # IMMEDIATE takes the write lock up front: two workers cannot claim the same report.
        cursor.execute("BEGIN IMMEDIATE")
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
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
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


def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """Open a store by URL: `postgresql://…` / `postgres://…`, `sqlite:///path`, a plain path or
    `:memory:`. The schema is brought up to date unless `migrate` is False."""
    target = url or default_store_url()
    store: Store
    if target.startswith(("postgresql://", "postgres://")):
        store = PostgresStore(target)
    elif target.startswith("sqlite://"):
        rest = target.removeprefix("sqlite://")
        store = SqliteStore(":memory:" if rest in ("", "/:memory:", ":memory:") else rest.removeprefix("/"))
    elif "://" in target:
        raise StoreError(f"unknown store URL {target!r}: use a file path, sqlite:///path or postgresql://…")
    else:
        store = SqliteStore(target)
    if migrate:
        try:
            store.migrate()
        except Exception as exc:  # not a database, or a schema we cannot bring up to date
            store.close()
            raise StoreError(f"cannot prepare the store {target!r}: {exc}") from exc
    return store
