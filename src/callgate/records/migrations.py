"""The store's schema, as numbered migrations. The same SQL runs on SQLite and PostgreSQL: JSON is
kept as text, times as epoch microseconds (BIGINT) or seconds (DOUBLE PRECISION)."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE calls (
                call_id TEXT PRIMARY KEY,
                started_us BIGINT NOT NULL DEFAULT 0,
                ended_us BIGINT NOT NULL DEFAULT 0,
                caller TEXT NOT NULL DEFAULT '',
                callee TEXT NOT NULL DEFAULT '',
                ended_reason TEXT,
                record TEXT NOT NULL
            )""",
            "CREATE INDEX calls_started ON calls (started_us)",
            """CREATE TABLE outbox (
                idempotency_key TEXT PRIMARY KEY,
                call_id TEXT NOT NULL REFERENCES calls (call_id),
                url TEXT NOT NULL,
                auth_user TEXT,
                auth_password TEXT,
                payload TEXT NOT NULL,
                status TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                max_attempts INTEGER NOT NULL,
                next_attempt_at DOUBLE PRECISION NOT NULL,
                lease_until DOUBLE PRECISION,
                last_status INTEGER,
                last_error TEXT,
                created_at DOUBLE PRECISION NOT NULL,
                delivered_at DOUBLE PRECISION
            )""",
            "CREATE INDEX outbox_due ON outbox (status, next_attempt_at)",
            "CREATE INDEX outbox_call ON outbox (call_id)",
        ],
    ),
    (
        2,
        [
            # params.save_conversation: what a conversation's earlier calls leave for the next one.
            """CREATE TABLE conversations (
                conversation_id TEXT PRIMARY KEY,
                summary TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )""",
        ],
    ),
    (
        3,
        [
            # How the private-address guard applies to the report's URL: "strict" (checked,
            # resolved and pinned) or "exempt" (the document allowed it); NULL: written before.
            "ALTER TABLE outbox ADD COLUMN guard TEXT",
        ],
    ),
    (
        4,
        [
            # The outcome of the call's last transfer (completed, failed, refused, cancelled), so the
            # admin API and dashboard can filter and count by it without reading every record.
            "ALTER TABLE calls ADD COLUMN transfer_result TEXT",
        ],
    ),
    (
        5,
        [
            # Who holds an outbox row's lease (a worker id, `host:pid:random`): only the holder
            # may settle the row, and a holder whose process is gone is taken over at once.
            "ALTER TABLE outbox ADD COLUMN lease_owner TEXT",
            # A call's post-call work (the post_prompt, then queueing its report) as one durable
            # job, written with the record at call end: a restart or `calls deliver` resumes it.
            """CREATE TABLE post_jobs (
                call_id TEXT PRIMARY KEY REFERENCES calls (call_id),
                state TEXT NOT NULL,
                spec TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                lease_owner TEXT,
                lease_until DOUBLE PRECISION,
                error TEXT,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX post_jobs_state ON post_jobs (state)",
        ],
    ),
]

LATEST = MIGRATIONS[-1][0]
