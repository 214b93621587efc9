"""`kill -9` of a worker in the middle of a delivery loses nothing: after a restart the report goes
out again with the same idempotency key, and the receiver ends up with it exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from callgate.records.store import DELIVERED, PENDING, NewReport, open_store
from callgate.telephony.clock import SystemClock

from .receiver import Receiver, running_receiver
from .test_store import record


def worker(db: str) -> subprocess.Popen[bytes]:
    """`callgate calls deliver` in its own process, with a short lease so a restart need not wait long."""
    command = [sys.executable, "-c", "from callgate.cli import main; main()"]
    args = ["calls", "deliver", "--db", db, "--lease", "2", "--timeout", "60"]
    return subprocess.Popen([*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_kill_9_mid_delivery_then_restart_delivers_once(store_url: str) -> None:
    with running_receiver(Receiver(stall_first=True)) as receiver:
        with open_store(store_url) as store:
            payload = {"action": "post_conversation", "idempotency_key": "crash-key"}
            store.save_call(
                record("crash"), NewReport("crash-key", receiver.url, payload), now=SystemClock().time()
            )

        first = worker(store_url)
        try:
            assert receiver.first_arrived.wait(60), "the first worker never posted the report"
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
        assert first.returncode == -signal.SIGKILL
        receiver.release.set()  # the stalled request's handler may finish now; its sender is gone

        with open_store(store_url) as store:
            (report,) = store.reports()
            assert (report.status, report.attempts) == (PENDING, 1)  # still there, mid-delivery

        second = worker(store_url)
        try:
            _out, err = second.communicate(timeout=120)
        finally:
            if second.poll() is None:
                second.kill()
                second.wait(timeout=30)
        assert second.returncode == 0, err.decode()
        assert "1 delivered" in err.decode()

    keys = [r.headers["idempotency-key"] for r in receiver.requests]
    assert keys == ["crash-key", "crash-key"]  # sent twice, with one key…
    assert list(receiver.accepted) == ["crash-key"]  # …and delivered once
    with open_store(store_url) as store:
        (report,) = store.reports()
        assert (report.status, report.attempts, report.last_status) == (DELIVERED, 2, 200)
