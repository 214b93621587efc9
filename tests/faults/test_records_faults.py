"""Never lose a record or a report (issue 10, items 4-6), against the real CLI and real stores:

- the record is committed when the call ends, before the post_prompt; a `kill -9` while the
  post_prompt model is answering loses nothing, and `calls deliver` (or serve's worker) finishes
  the job and delivers the report exactly once;
- outbox rows are leased one at a time by a worker id: two workers against a slow receiver post
  every report once; a URL that can never work fails the report with the reason;
- the store is used off the event loop: a locked, corrupt or unreachable store neither stalls
  the loop nor crashes a call — the record is spooled, imported once the store is usable — and
  `calls` commands say what is wrong with the store in one line.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from callgate.records.async_store import AsyncStore
from callgate.records.leases import HOST
from callgate.records.model import CallRecord
from callgate.records.outbox import DeliveryWorker, RetryPolicy
from callgate.records.spool import Spool
from callgate.records.store import DELIVERED, DONE, FAILED, PENDING, NewReport, open_store
from callgate.runtime.models import ModelPool
from callgate.runtime.post_call import deliver_in_background
from callgate.telephony.clock import SystemClock
from records.conftest import fresh_database, pg_url  # noqa: F401  (a fixture, for the PostgreSQL cases)
from records.receiver import Receiver, running_receiver
from server.serving import free_port

from .report_faults import (
    DEADLINE,
    SUMMARY,
    cli_env,
    finish,
    hang_up_then,
    locked_sqlite,
    report_agent,
    run_callgate,
    spawn_chat,
    wait_until,
)
from .security_support import CALLGATE, ModelThread, closed_port

SECRET = "pg-Secr3t-pw"


def _no_traceback(*outputs: str) -> None:
    for out in outputs:
        assert "Traceback" not in out, out


def _posted(receiver: Receiver) -> list[str]:
    return [r.headers.get("idempotency-key", "") for r in receiver.requests]


# ------------------------------------------------------------------ item 4: record at call end


def _resume_with_calls_deliver(agent: Path, env: dict[str, str], receiver: Receiver) -> None:
    delivered = run_callgate(["calls", "deliver"], env)
    assert delivered.returncode == 0, delivered.stderr
    assert "1 delivered" in delivered.stderr
    again = run_callgate(["calls", "deliver"], env)  # nothing left to do: no second report
    assert again.returncode == 0, again.stderr
    _no_traceback(delivered.stderr, again.stderr)


def _resume_with_serve(agent: Path, env: dict[str, str], receiver: Receiver) -> None:
    """A restarted `serve` (HTTP only, no calls) finishes the job in its background worker."""
    serve = subprocess.Popen(
        [str(CALLGATE), "serve", str(agent), "--http", f"127.0.0.1:{free_port()}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_until(lambda: bool(receiver.requests), "the report from the restarted serve")
    finally:
        serve.send_signal(signal.SIGTERM)
        stopped = finish(serve)
    assert stopped.returncode == 0, stopped.stderr
    _no_traceback(stopped.stderr)


@pytest.mark.parametrize("resume", [_resume_with_calls_deliver, _resume_with_serve], ids=["deliver", "serve"])
def test_kill_9_while_the_post_prompt_answers_then_a_restart_sends_the_report_once(
    tmp_path: Path, resume: Callable[[Path, dict[str, str], Receiver], None]
) -> None:
    db = tmp_path / "calls.db"
    with running_receiver() as receiver, ModelThread(hang_up_then({"stall": True})) as model:
        env = cli_env(model.base_url("agent"), str(db))
        agent = report_agent(tmp_path, receiver.url)
        chat = spawn_chat(agent, env)
        try:
            # The post_prompt request is the model's second: it stalls, the kill lands in that window.
            wait_until(lambda: len(model.requests_of("agent")) >= 2, "the post_prompt request")
            with open_store(str(db)) as store:
                (listed,) = store.list_calls()
                job = store.job(listed.call_id)
                assert job is not None and job.state == PENDING  # the record is committed already
        finally:
            chat.send_signal(signal.SIGKILL)
            finish(chat)
        assert chat.returncode == -signal.SIGKILL
        assert model.requests_of("agent")[1].messages[-1]["content"] == "Summarize the call."
        assert receiver.requests == []
        resume(agent, env, receiver)
        # Whatever else runs now finds nothing left to send.
        assert run_callgate(["calls", "deliver"], env).returncode == 0

    assert len(receiver.requests) == 1  # exactly once
    body = receiver.requests[0].body
    assert body["call_id"] == listed.call_id
    assert body["post_prompt_data"]["raw"] == SUMMARY
    with open_store(str(db)) as store:
        record = store.get_call(listed.call_id)
        assert record is not None and record.post_prompt_data is not None
        assert record.post_prompt_data.raw == SUMMARY
        job = store.job(listed.call_id)
        assert job is not None and job.state == DONE
        (report,) = store.reports(listed.call_id)
        assert (report.status, report.attempts) == (DELIVERED, 1)


async def _background_worker_until(done: Callable[[], bool], store: AsyncStore, env: dict[str, str]) -> None:
    """serve's background worker (`deliver_in_background`) on `store`, until `done()` (or the deadline)."""
    clock = SystemClock()
    models = ModelPool(env, clock)
    async with httpx.AsyncClient() as http:
        worker = asyncio.create_task(deliver_in_background(store, http, clock, models.model_for, env))
        try:
            loop = asyncio.get_running_loop()
            end = loop.time() + DEADLINE
            while not done() and loop.time() < end:
                await asyncio.sleep(0.05)
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            await models.aclose()
            await store.aclose()


def test_serves_background_worker_takes_over_a_job_whose_process_died(tmp_path: Path) -> None:
    """A job leased by a process of this host that is gone is resumed at once (DESIGN §7)."""
    db = str(tmp_path / "calls.db")
    dead = subprocess.Popen(["true"])
    dead.wait(timeout=30)
    spec: dict[str, Any] = {
        "instructions": "Summarize the call.",
        "messages": [{"role": "user", "content": "hello"}],
        "ai": {"post_prompt": {"text": "Summarize the call."}, "params": {}},
        "conversation_id": None,
    }
    with running_receiver() as receiver, ModelThread({"agent": [{"text": SUMMARY}]}) as model:
        spec["report"] = {"url": receiver.url, "guard": "exempt", "max_attempts": 3}
        with open_store(db) as store:
            store.save_call(CallRecord(call_id="orphan"), now=1.0, job=spec)
            owner = f"{HOST}:{dead.pid}:gone"
            # The dead process held the job for another hour: no need to wait that out.
            assert store.claim_job(SystemClock().time(), 3600, owner=owner) is not None

        env = {"CALLGATE_LLM_URL": model.base_url("agent"), "OPENAI_API_KEY": "test"}
        with open_store(db) as store:
            asyncio.run(_background_worker_until(lambda: bool(receiver.requests), AsyncStore(store), env))
    assert len(receiver.requests) == 1
    assert receiver.requests[0].body["post_prompt_data"]["raw"] == SUMMARY


def test_serves_background_worker_imports_spooled_records(tmp_path: Path) -> None:
    db = str(tmp_path / "calls.db")
    spool = Spool(tmp_path / "spool")
    spool.write(CallRecord(call_id="spooled-earlier"), now=1.0)

    asyncio.run(_background_worker_until(lambda: not spool.pending(), AsyncStore(open_store(db), spool), {}))
    assert spool.pending() == []
    with open_store(db) as store:
        assert store.get_call("spooled-earlier") is not None


# ------------------------------------------------------------------ item 5: per-row leases


@pytest.fixture(params=["sqlite", "postgres"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "calls.db")
    return fresh_database(request.getfixturevalue("pg_url"))


def _queue_reports(url: str, report_url: str, count: int = 6) -> list[str]:
    keys = [f"key-{n}" for n in range(count)]
    with open_store(url) as store:
        for key in keys:
            store.save_call(CallRecord(call_id=key), NewReport(key, report_url, {"k": key}), now=0.0)
    return keys


def test_two_workers_against_a_slow_receiver_post_every_report_once(shared_store: str) -> None:
    with running_receiver(Receiver(delay=0.5)) as receiver:
        keys = _queue_reports(shared_store, receiver.url)
        # A lease shorter than the receiver takes for all of them: claimed in a batch, the second
        # worker would take reports the first is still posting.
        policy = RetryPolicy(lease=1.0, timeout=20.0)

        async def run() -> None:
            clock = SystemClock()
            with open_store(shared_store) as one, open_store(shared_store) as two:
                assert one.owner != two.owner
                async with httpx.AsyncClient() as http:
                    workers = [DeliveryWorker(s, http, clock, policy) for s in (one, two)]
                    await asyncio.wait_for(
                        asyncio.gather(*(w.run_until_settled(max_sleep=0.2) for w in workers)), DEADLINE
                    )

        asyncio.run(run())
    assert sorted(_posted(receiver)) == keys  # each POSTed exactly once
    assert receiver.duplicates == 0
    with open_store(shared_store) as store:
        reports = store.reports()
    assert {(r.status, r.attempts) for r in reports} == {(DELIVERED, 1)}  # attempts not doubled


def test_two_deliver_processes_against_a_slow_receiver_post_every_report_once(shared_store: str) -> None:
    with running_receiver(Receiver(delay=0.5)) as receiver:
        keys = _queue_reports(shared_store, receiver.url)
        env = {**os.environ, "CALLGATE_DB": shared_store}
        args = [str(CALLGATE), "calls", "deliver", "--lease", "1", "--timeout", "20"]
        workers = [
            subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(2)
        ]
        done = [finish(worker) for worker in workers]
    for result in done:
        assert result.returncode == 0, result.stderr
        _no_traceback(result.stderr)
    assert sorted(_posted(receiver)) == keys
    with open_store(shared_store) as store:
        assert {(r.status, r.attempts) for r in store.reports()} == {(DELIVERED, 1)}


def test_only_the_lease_holder_settles_a_report(tmp_path: Path) -> None:
    db = str(tmp_path / "calls.db")
    with open_store(db) as one, open_store(db) as two:
        one.save_call(CallRecord(call_id="c"), NewReport("k", "http://127.0.0.1:9/r", {}), now=0.0)
        (claimed,) = one.claim_due(now=1.0, lease_seconds=60)
        assert claimed.lease_owner == one.owner
        assert not two.mark_delivered("k", 200, now=2.0)
        assert not two.mark_attempt_failed("k", status=None, error="late", retry_at=None)
        (row,) = one.reports()
        assert (row.status, row.last_error) == (PENDING, None)
        assert one.mark_delivered("k", 200, now=3.0)
        (row,) = two.reports()
        assert (row.status, row.last_status) == (DELIVERED, 200)


BAD_URLS = {
    "http://[::1/hook": "invalid URL",
    "notaurl": "not an http(s) URL",
    "ftp://127.0.0.1/report": "unsupported URL scheme 'ftp'",
}


@pytest.mark.parametrize("url", list(BAD_URLS))
def test_a_url_that_can_never_work_fails_the_report_with_the_reason(tmp_path: Path, url: str) -> None:
    db = str(tmp_path / "calls.db")
    with open_store(db) as store:
        store.save_call(CallRecord(call_id="bad-url"), NewReport("k", url, {}, guard="strict"), now=0.0)

        async def run() -> None:
            async with httpx.AsyncClient() as http:
                worker = DeliveryWorker(store, http, SystemClock())
                (attempt,) = await worker.deliver_due()  # never an exception out of it
                assert attempt.gave_up and not attempt.ok
                await worker.run_until_settled()  # and nothing left pending

        asyncio.run(run())
        (report,) = store.reports()
    assert report.status == FAILED
    assert report.attempts == 1
    assert report.last_error is not None and BAD_URLS[url] in report.last_error
    shown = run_callgate(["calls", "show", "bad-url"], {**os.environ, "CALLGATE_DB": db, "COLUMNS": "240"})
    assert shown.returncode == 0, shown.stderr
    assert "failed" in shown.stdout and BAD_URLS[url] in shown.stdout
    listed = run_callgate(["calls", "reports", "--json"], {**os.environ, "CALLGATE_DB": db})
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["status"] == FAILED and BAD_URLS[url] in row["last_error"]


def test_chat_with_a_broken_post_prompt_url_finishes_normally(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    with ModelThread(hang_up_then({"text": SUMMARY})) as model:
        env = cli_env(model.base_url("agent"), str(db))
        result = finish(spawn_chat(report_agent(tmp_path, "http://[::1/hook"), env))
    assert result.returncode == 0, result.stdout + result.stderr
    _no_traceback(result.stdout, result.stderr)
    assert "report failed" in result.stdout
    with open_store(str(db)) as store:
        (report,) = store.reports()
    assert report.status == FAILED and report.last_error and "invalid URL" in report.last_error


# ------------------------------------------------------------------ item 6: the store off the loop


async def _while_ticking(work: asyncio.Future[Any]) -> int:
    """Run `work` while a ticker counts; the count it reached when `work` ended. A loop blocked by
    `work` would leave it at zero."""
    count = 0

    async def tick() -> None:
        nonlocal count
        while True:
            await asyncio.sleep(0.01)
            count += 1

    ticker = asyncio.create_task(tick())
    try:
        await asyncio.wait_for(work, DEADLINE)
    finally:
        ticker.cancel()
    return count


def _lock_postgres_row(url: str, call_id: str) -> psycopg.Connection[Any]:
    """Another session writing the same call, not committed: our insert waits on its row lock."""
    conn = psycopg.connect(url)
    conn.execute("INSERT INTO calls (call_id, record) VALUES (%s, '{}')", (call_id,))
    return conn


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_locked_store_neither_stalls_the_loop_nor_loses_the_record(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    url = (
        str(tmp_path / "calls.db") if kind == "sqlite" else fresh_database(request.getfixturevalue("pg_url"))
    )
    open_store(url).close()  # the schema is there
    spool = Spool(tmp_path / "spool")
    finished = CallRecord(call_id="locked-call", ended_reason="assistant-ended-call")

    async def run() -> tuple[bool, int, int]:
        async_store = AsyncStore(open_store(url), spool)
        try:
            if kind == "sqlite":
                lock = locked_sqlite(Path(url))
                lock.__enter__()
            else:
                conn = _lock_postgres_row(url, "locked-call")
            try:
                save = asyncio.ensure_future(async_store.save_call(finished, now=1.0))
                ticks = await _while_ticking(save)
                saved = save.result()
            finally:
                if kind == "sqlite":
                    lock.__exit__(None, None, None)
                else:
                    conn.rollback()
                    conn.close()
            imported = await async_store.replay()
        finally:
            await async_store.aclose()
        return saved, ticks, imported

    saved, ticks, imported = asyncio.run(run())
    assert not saved  # it went to the spool…
    assert ticks > 20  # …while the loop went on
    assert imported == 1 and spool.pending() == []
    with open_store(url) as store:
        stored = store.get_call("locked-call")
    assert stored is not None and stored.ended_reason == "assistant-ended-call"


def test_chat_on_a_locked_store_spools_the_call_and_the_next_command_imports_it(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    open_store(str(db)).close()
    with running_receiver() as receiver, ModelThread(hang_up_then({"text": SUMMARY})) as model:
        env = cli_env(model.base_url("agent"), str(db))
        with locked_sqlite(db):
            result = finish(spawn_chat(report_agent(tmp_path, receiver.url), env))
            # Held by another process all along: nothing could be written.
            assert Spool(Path(f"{db}.spool")).pending() != []
        assert result.returncode == 0, result.stdout + result.stderr
        _no_traceback(result.stdout, result.stderr)
        assert "call spooled" in result.stdout
        assert "call ended: assistant-ended-call" in result.stdout

        listed = run_callgate(["calls", "list", "--json"], env)  # imports the spool
        assert listed.returncode == 0, listed.stderr
        (call,) = json.loads(listed.stdout)
        assert call["ended_reason"] == "assistant-ended-call"
        assert Spool(Path(f"{db}.spool")).pending() == []
        delivered = run_callgate(["calls", "deliver"], env)
        assert delivered.returncode == 0, delivered.stderr
    assert len(receiver.requests) == 1
    assert receiver.requests[0].body["call_id"] == call["call_id"]
    assert receiver.requests[0].body["post_prompt_data"]["raw"] == SUMMARY


def test_calls_commands_on_a_locked_store_say_so_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    with open_store(str(db)) as store:
        store.save_call(CallRecord(call_id="c"), NewReport("k", "http://127.0.0.1:9/r", {}), now=0.0)
    env = {**os.environ, "CALLGATE_DB": str(db)}
    with locked_sqlite(db):
        listed = run_callgate(["calls", "list", "--json"], env)  # reading still works
        delivering = run_callgate(["calls", "deliver", "--no-wait"], env)
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["call_id"] == "c"
    assert delivering.returncode == 2
    _no_traceback(delivering.stdout, delivering.stderr)
    assert "database is locked" in delivering.stderr
    assert len(delivering.stderr.strip().splitlines()) == 1


def test_a_corrupt_store_spools_the_call_and_calls_commands_say_why(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    db.write_bytes(b"this is not a database, it was overwritten by mistake\n" * 200)
    with ModelThread(hang_up_then({"text": SUMMARY})) as model:
        env = cli_env(model.base_url("agent"), str(db))
        result = finish(spawn_chat(report_agent(tmp_path, "http://127.0.0.1:9/report"), env))
    assert result.returncode == 0, result.stdout + result.stderr
    _no_traceback(result.stdout, result.stderr)
    assert "call records are off" in result.stdout and "call spooled" in result.stdout
    assert len(Spool(Path(f"{db}.spool")).pending()) == 1

    listed = run_callgate(["calls", "list"], env)
    assert listed.returncode == 2
    _no_traceback(listed.stdout, listed.stderr)
    assert "not a database" in listed.stderr
    assert len(Spool(Path(f"{db}.spool")).pending()) == 1  # still waiting, not lost


def test_an_unreachable_postgres_spools_the_call_without_showing_its_password(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    spool_dir = tmp_path / "spool"
    down = f"postgresql://callgate:{SECRET}@127.0.0.1:{closed_port()}/calls"
    with ModelThread(hang_up_then({"text": SUMMARY})) as model:
        env = cli_env(model.base_url("agent"), down, CALLGATE_SPOOL_DIR=str(spool_dir))
        result = finish(spawn_chat(report_agent(tmp_path, "http://127.0.0.1:9/report"), env))
        assert result.returncode == 0, result.stdout + result.stderr
        _no_traceback(result.stdout, result.stderr)
        assert "call spooled" in result.stdout
        assert SECRET not in result.stdout + result.stderr
        assert len(Spool(spool_dir).pending()) == 1

        listed = run_callgate(["calls", "list"], env)
        assert listed.returncode == 2
        _no_traceback(listed.stdout, listed.stderr)
        assert "callgate:***@127.0.0.1" in " ".join(listed.stderr.split())
        assert SECRET not in listed.stdout + listed.stderr

        # The server is back (here: another one): the next command imports the call.
        up = fresh_database(request.getfixturevalue("pg_url"))
        listed = run_callgate(["calls", "list", "--json"], {**env, "CALLGATE_DB": up})
        assert listed.returncode == 0, listed.stderr
    (call,) = json.loads(listed.stdout)
    assert call["ended_reason"] == "assistant-ended-call"
    assert Spool(spool_dir).pending() == []


@contextmanager
def _immutable(path: Path) -> Iterator[None]:
    """The file cannot be written, even by root (who ignores its mode bits)."""
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot make a file read-only here: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)


def test_a_read_only_store_spools_the_call_until_it_is_writable(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    open_store(str(db)).close()
    with ModelThread(hang_up_then({"text": SUMMARY})) as model:
        env = cli_env(model.base_url("agent"), str(db))
        with _immutable(db):
            result = finish(spawn_chat(report_agent(tmp_path, "http://127.0.0.1:9/report"), env))
        assert result.returncode == 0, result.stdout + result.stderr
        _no_traceback(result.stdout, result.stderr)
        assert "call spooled" in result.stdout
        listed = run_callgate(["calls", "list", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    (call,) = json.loads(listed.stdout)
    assert call["ended_reason"] == "assistant-ended-call"


def test_a_postgres_connection_lost_mid_run_spools_then_reconnects(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    url = fresh_database(pg_url)
    spool = Spool(tmp_path / "spool")

    async def run() -> tuple[bool, int]:
        async_store = AsyncStore(open_store(url), spool)
        try:
            with psycopg.connect(url, autocommit=True) as admin:  # the server drops our session
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            saved = await async_store.save_call(CallRecord(call_id="dropped"), now=1.0)
            return saved, await async_store.replay()  # the next use connects again
        finally:
            await async_store.aclose()

    saved, imported = asyncio.run(run())
    assert (saved, imported) == (False, 1)
    with open_store(url) as store:
        assert store.get_call("dropped") is not None
