"""A call store with calls of every kind, and `callgate dashboard` serving it as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from callgate.records.model import CallRecord, TimelineEntry, TransferEntry
from callgate.records.store import NewReport, open_store

from .serving import CALLGATE, free_port

TOKEN = "test-admin-token-7f3a"
NOW_US = int(time.time() * 1_000_000)
MINUTE_US = 60_000_000


def _record(
    call_id: str,
    *,
    minutes_ago: int,
    caller: str,
    reason: str,
    seconds: float,
    transfers: list[TransferEntry] | None = None,
    timeline: list[TimelineEntry] | None = None,
    log: list[dict[str, object]] | None = None,
) -> CallRecord:
    start = NOW_US - minutes_ago * MINUTE_US
    return CallRecord(
        call_id=call_id,
        caller_id_num=caller,
        caller_id_name="Ann",
        to_number="+15559870000",
        call_start_date=start,
        call_answer_date=start,
        call_end_date=start + int(seconds * 1_000_000),
        ended_reason=reason,
        ended_by="assistant" if reason.startswith("assistant") else "user",
        transfers=transfers or [],
        timeline=timeline or [],
        raw_call_log=[
            {**message, "timestamp": start + int(float(str(message.pop("at", 0))) * 1_000_000)}
            for message in (log or [])
        ],
        swaig_log=[
            {
                "command_name": "lookup_order",
                "command_arg": '{"order": "A-17"}',
                "post_response": {"response": "Order A-17 ships tomorrow."},
            }
        ]
        if transfers
        else [],
    )


GOODBYE_CALL = _record(
    "call-goodbye-0001",
    minutes_ago=5,
    caller="+15551230000",
    reason="assistant-ended-call",
    seconds=9.0,
    timeline=[
        TimelineEntry(t=0.0, kind="answered"),
        TimelineEntry(t=0.1, kind="say", data={"text": "Hi, this is Rosa.", "seconds": 1.6}),
        TimelineEntry(t=3.0, kind="caller-said", data={"text": "I have to go, bye"}),
        TimelineEntry(t=3.2, kind="say", data={"text": "Goodbye!", "seconds": 0.8}),
        TimelineEntry(t=4.3, kind="hangup", data={"reason": "assistant-ended-call"}),
    ],
    log=[
        {"role": "assistant", "content": "Hi, this is Rosa.", "at": 0.1},
        {"role": "user", "content": "I have to go, bye", "at": 3.0},
        {"role": "assistant", "content": "Goodbye!", "at": 3.2},
    ],
)
TRANSFER_CALL = _record(
    "call-transfer-0002",
    minutes_ago=30,
    caller="+15554445555",
    reason="assistant-forwarded-call",
    seconds=40.0,
    transfers=[TransferEntry(to="+15550002222", mode="warm", result="completed")],
    timeline=[
        TimelineEntry(t=0.1, kind="say", data={"text": "Acme, how can I help?", "seconds": 2.0}),
        TimelineEntry(t=4.0, kind="caller-said", data={"text": "A person please"}),
        TimelineEntry(t=5.0, kind="warm-hold"),
        TimelineEntry(t=5.1, kind="warm-dial", data={"to": "+15550002222"}),
        TimelineEntry(t=9.0, kind="warm-answered", data={"to": "+15550002222"}),
        TimelineEntry(t=9.1, kind="warm-consult"),
        TimelineEntry(t=20.0, kind="warm-consult-ended"),
        TimelineEntry(t=20.1, kind="warm-unhold"),
        TimelineEntry(t=20.2, kind="warm-bridged", data={"to": "+15550002222"}),
        TimelineEntry(
            t=20.2,
            kind="transfer-outcome",
            data={"to": "+15550002222", "mode": "warm", "result": "completed"},
        ),
    ],
    log=[
        {"role": "assistant", "content": "Acme, how can I help?", "at": 0.1},
        {"role": "user", "content": "A person please", "at": 4.0},
    ],
)
SILENT_CALL = _record(
    "call-silent-0003",
    minutes_ago=60 * 26,
    caller="+15557778888",
    reason="silence-timed-out",
    seconds=62.0,
    timeline=[
        TimelineEntry(t=0.1, kind="say", data={"text": "Hello?", "seconds": 0.5}),
        TimelineEntry(t=60.0, kind="say", data={"text": "I haven't heard from you.", "seconds": 2.0}),
        TimelineEntry(t=62.0, kind="hangup", data={"reason": "silence-timed-out"}),
    ],
)
CALLS = (GOODBYE_CALL, TRANSFER_CALL, SILENT_CALL)


@dataclass
class Dashboard:
    url: str
    db: Path
    proc: subprocess.Popen[str]

    def get(self, path: str, token: str | None = TOKEN, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.get(self.url + path, headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, token: str | None = TOKEN, json: object = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.post(self.url + path, headers=headers, json=json if json is not None else {}, timeout=10)


def fill_store(db: Path, report_url: str) -> None:
    with open_store(f"sqlite:///{db}") as store:
        for record in CALLS:
            report = None
            if record is GOODBYE_CALL:
                report = NewReport(
                    idempotency_key=f"key-{record.call_id}",
                    url=report_url,
                    payload={"action": "post_conversation", "call_id": record.call_id},
                    auth_user="reports",
                    auth_password="s3cret-pass",
                    max_attempts=1,
                )
            store.save_call(record, report, now=time.time())


def deliver_once(db: Path) -> None:
    """`callgate calls deliver`, as a user runs it: each report gets its attempts now."""
    subprocess.run(
        [str(CALLGATE), "calls", "deliver", "--db", f"sqlite:///{db}"],
        capture_output=True,
        timeout=60,
        check=False,
    )


@contextmanager
def running_dashboard(db: Path, env: dict[str, str] | None = None) -> Iterator[Dashboard]:
    port = free_port()
    proc = subprocess.Popen(
        [str(CALLGATE), "dashboard", "--http", f"127.0.0.1:{port}", "--db", f"sqlite:///{db}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CALLGATE_ADMIN_TOKEN": TOKEN, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "callgate dashboard did not start: " + (proc.stderr.read() if proc.stderr else "")
                )
            time.sleep(0.1)
        yield Dashboard(url, db, proc)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
