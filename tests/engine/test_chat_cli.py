"""`callgate chat` as a user runs it: a real process, typed lines on stdin, a model over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callgate.scenario.model_server import ScriptedModelServer

ROOT = Path(__file__).resolve().parents[2]
CALLGATE = ROOT / ".venv" / "bin" / "callgate"


class _ServerThread:
    """The scripted OpenAI-protocol model server, in a thread of its own with its own event loop."""

    def __init__(self, scripts: dict[str, list[dict[str, Any]]]) -> None:
        self.scripts = scripts
        self.server: ScriptedModelServer | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with ScriptedModelServer(self.scripts) as server:
            self.server = server
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> ScriptedModelServer:
        self._thread.start()
        assert self._ready.wait(timeout=30), "model server did not start"
        assert self.server is not None
        return self.server

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "calls.db"


def _chat(agent: Path, lines: list[str], base_url: str, store: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CALLGATE_LLM_URL": base_url, "CALLGATE_DB": str(store), "OPENAI_API_KEY": "test"}
    proc = subprocess.Popen(
        [str(CALLGATE), "chat", str(agent), "--from", "+15551230000"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdin is not None
    for line in lines:
        proc.stdin.write(line + "\n")
    proc.stdin.flush()
    # stdin stays open: end of input would be the caller hanging up. The agent ends this call.
    try:
        out, err = _wait(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _wait(proc: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.stdout is not None and proc.stderr is not None
    if proc.stdin is not None:
        proc.stdin.close()
    return proc.stdout.read(), proc.stderr.read()


def test_chat_hangs_up_after_the_goodbye(store: Path) -> None:
    scripts = {
        "agent": [
            {"text": "Hi, this is Frank from Acme Support. How can I help?"},
            {
                "match": "have to go",
                "text": 'Sure thing. <imsagent_hangup endword="Thanks for calling, goodbye!"/>',
            },
        ]
    }
    with _ServerThread(scripts) as server:
        result = _chat(
            ROOT / "examples/agents/ims_agent.yaml", ["Sorry, I have to go."], server.base_url("agent"), store
        )
        requests = len(server.requests)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Hi, this is Frank" in out
    assert out.index("Sure thing.") < out.index("Thanks for calling, goodbye!")
    assert "imsagent" not in out and "endword" not in out
    assert "assistant-ended-call" in out
    assert requests == 2  # no model request after the hang-up

    listed = subprocess.run(
        [str(CALLGATE), "calls", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CALLGATE_DB": str(store)},
    )
    assert listed.returncode == 0, listed.stderr
    calls = json.loads(listed.stdout)
    assert len(calls) == 1
    assert calls[0]["ended_reason"] == "assistant-ended-call"


def test_chat_refuses_a_broken_document(tmp_path: Path, store: Path) -> None:
    agent = tmp_path / "broken.yaml"
    agent.write_text("sections:\n  main:\n    - ai:\n        params:\n          inactivity_timeout: -5\n")
    proc = subprocess.run(
        [str(CALLGATE), "chat", str(agent)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "CALLGATE_DB": str(store)},
    )
    assert proc.returncode == 1
    assert "sections.main[0].ai.params.inactivity_timeout" in proc.stdout + proc.stderr
    assert ":5:" in proc.stdout + proc.stderr  # the line is named


def test_piped_lines_wait_for_each_answer_and_eof_hangs_up(store: Path) -> None:
    scripts = {
        "agent": [
            {"text": "Hi, this is Frank."},
            {"match": "first", "text": "Answer one."},
            {"match": "second", "text": "Answer two."},
        ]
    }
    with _ServerThread(scripts) as server:
        env = {**os.environ, "CALLGATE_LLM_URL": server.base_url("agent"), "CALLGATE_DB": str(store)}
        proc = subprocess.run(
            [str(CALLGATE), "chat", str(ROOT / "examples/agents/ims_agent.yaml")],
            input="first question\nsecond question\n",
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        failures = list(server.failures)
    assert proc.returncode == 0, proc.stderr
    assert failures == []
    out = proc.stdout
    # Each answer comes after its question, and the end of input hangs up after the last answer.
    assert out.index("first question") < out.index("Answer one.") < out.index("second question")
    assert out.index("second question") < out.index("Answer two.")
    assert "customer-ended-call" in out
