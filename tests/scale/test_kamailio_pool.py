"""More calls than one box (issue 15): Kamailio's dispatcher spreads sipp calls over three
`callgate serve` workers sharing one PostgreSQL; a worker killed with SIGKILL drops out of rotation,
a worker sent SIGTERM drains; every call that was recorded has its report delivered exactly once."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from callgate.records.store import open_store
from records.pg_server import PgUnavailable, postgres_server
from records.receiver import Receiver, running_receiver
from server.peers import ModelThread
from server.serving import Served, serving

from .pool import calls_through, finish, kamailio, kill, workdir

REPLY = 'Hello from the pool. <imsagent_hangup endword="Goodbye."/>'


def _agent(path: Path, report_url: str) -> Path:
    document = {
        "version": "1.0.0",
        "sections": {
            "main": [
                {
                    "ai": {
                        "prompt": {"text": "You are a test agent. Greet the caller and hang up."},
                        "post_prompt": {"text": "Summarise the call in one line."},
                        "post_prompt_url": report_url,
                        "params": {"swaig_allow_private_urls": True},
                    }
                }
            ]
        },
    }
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    try:
        with postgres_server() as url:
            yield url
    except PgUnavailable as exc:
        pytest.fail(f"PostgreSQL is required: {exc}")


def _recorded(served: Served) -> int:
    return len(served.logs(msg="call recorded"))


def _settled(workers: list[Served]) -> list[int]:
    """Once every call the workers started is recorded (a record may land a little after its
    caller has gone): their record counts, a baseline no earlier call can still move."""
    _wait(
        lambda: all(_recorded(w) == len(w.logs(msg="call started")) for w in workers),
        "every started call recorded",
    )
    return [_recorded(w) for w in workers]


def test_sixty_calls_spread_a_killed_worker_leaves_a_drained_one_finishes(pg_url: str) -> None:
    scripts = {"agent": [{"text": REPLY}] * 400}
    with (
        workdir() as work,
        running_receiver(Receiver()) as receiver,
        ModelThread(scripts) as model,
        contextlib.ExitStack() as stack,
    ):
        agent = _agent(work / "agent.yaml", receiver.url)
        env = {
            "CALLGATE_DB": pg_url,
            "CALLGATE_LLM_URL": model.base_url("agent"),
            "OPENAI_API_KEY": "test",
            "CALLGATE_ADMIN_TOKEN": "pool-test",
        }
        workers = [
            stack.enter_context(serving(agent, http=True, sip=True, env=env, extra=["--drain-timeout", "20"]))
            for _ in range(3)
        ]
        ports = [w.sip_port for w in workers]
        assert all(port is not None for port in ports)
        proxy = stack.enter_context(kamailio([p for p in ports if p is not None], work))
        uris = [f"sip:127.0.0.1:{p}" for p in ports]
        proxy.wait_flags({uri: "AP" for uri in uris})

        # 1. Sixty calls, spread over the three workers; every one answered, hung up by the agent
        #    after its goodbye, and recorded once.
        run = finish(calls_through(proxy.port, 60, work, rate=10, limit=30), work)
        assert (run.successful, run.failed) == (60, 0), run.errors
        _wait(lambda: sum(_recorded(w) for w in workers) == 60, "60 calls recorded")
        spread = [_recorded(w) for w in workers]
        assert all(count >= 10 for count in spread), spread

        # 2. kill -9 one worker mid-run: its calls end (the callers see a timeout or BYE), it leaves
        #    the rotation within the OPTIONS interval, and new calls go to the others.
        victim, *survivors = workers
        running = calls_through(proxy.port, 20, work, rate=10, limit=20)
        time.sleep(1.0)
        kill(victim.proc, signal.SIGKILL)
        finish(running, work)
        proxy.wait_flags({uris[0]: "I"})
        before = _settled(survivors)
        after_kill = finish(calls_through(proxy.port, 10, work, rate=10, limit=10), work)
        assert (after_kill.successful, after_kill.failed) == (10, 0), after_kill.errors
        _wait(lambda: sum(_recorded(w) for w in survivors) - sum(before) == 10, "10 calls on the survivors")

        # 3. SIGTERM drains a worker: it answers 503 to OPTIONS (out of rotation) and takes no new
        #    call, while the calls it has finish.
        draining, last = survivors
        in_flight = calls_through(proxy.port, 6, work, rate=6, limit=6)
        time.sleep(0.5)
        draining.proc.send_signal(signal.SIGTERM)
        proxy.wait_flags({uris[1]: "I"})
        drained_run = finish(in_flight, work)
        assert drained_run.failed == 0, drained_run.errors
        assert draining.proc.wait(timeout=30) == 0
        (last_before,) = _settled([last])
        final = finish(calls_through(proxy.port, 10, work, rate=10, limit=10), work)
        assert (final.successful, final.failed) == (10, 0), final.errors
        _wait(lambda: _recorded(last) - last_before == 10, "the last worker took every new call")

        # 4. No report lost or duplicated: every recorded call's report reached the receiver once
        #    (the killed worker's pending ones are delivered by the others).
        with open_store(pg_url) as store:
            keys = {report.idempotency_key for report in store.reports()}
            calls = store.list_calls(limit=1000)
        assert len(keys) == len(calls) >= 60 + 10 + 6 + 10
        _wait(lambda: set(receiver.accepted) == keys, "every report delivered", timeout=120)
        assert receiver.duplicates == 0


def _wait(check: object, what: str, timeout: float = 120.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {what}")
