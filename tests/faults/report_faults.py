"""Shared parts of the record and report fault tests: an agent that asks a post_prompt and sends
its report, `callgate chat` as a real process (killable), a SQLite store locked by another
connection, and a deadline-bounded wait."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .security_support import CALLGATE

SUMMARY = "The caller said hello."
DEADLINE = 120.0  # generous: a loaded machine is slow, never stuck this long


def report_agent(tmp_path: Path, report_url: str, extra: str = "") -> Path:
    """An agent with a post_prompt and a report URL (`extra`: more of the document, YAML)."""
    agent = tmp_path / "agent.yaml"
    agent.write_text(
        textwrap.dedent(
            f"""\
            version: 1.0.0
            sections:
              main:
                - ai:
                    prompt: {{text: "You are Frank."}}
                    post_prompt: {{text: "Summarize the call."}}
                    post_prompt_url: "{report_url}"
                    params: {{swaig_allow_private_urls: true}}
            {extra}"""
        ),
        encoding="utf-8",
    )
    return agent


def hang_up_then(post_prompt: dict[str, object]) -> dict[str, list[dict[str, object]]]:
    """Model scripts: the agent's one reply hangs up; the post_prompt request (the same endpoint:
    `CALLGATE_LLM_URL` serves every role) gets `post_prompt`, a later one the summary."""
    return {"agent": [{"text": 'Hi. <imsagent_hangup endword="Bye."/>'}, post_prompt, {"text": SUMMARY}]}


def cli_env(model_url: str, db: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "CALLGATE_LLM_URL": model_url,
        "CALLGATE_DB": db,
        "OPENAI_API_KEY": "test",
        **extra,
    }


def spawn_chat(agent: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`callgate chat AGENT` with no lines typed (stdin stays open: the agent ends the call)."""
    return subprocess.Popen(
        [str(CALLGATE), "chat", str(agent)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(proc: subprocess.Popen[str], timeout: float = DEADLINE) -> subprocess.CompletedProcess[str]:
    """Wait for `proc` (killed if it outlives `timeout`: a hang fails the test)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{proc.args!r} hung:\n{out}\n{err}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_callgate(
    args: list[str], env: dict[str, str], timeout: float = DEADLINE
) -> subprocess.CompletedProcess[str]:
    return finish(
        subprocess.Popen(
            [str(CALLGATE), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        ),
        timeout,
    )


def wait_until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"gave up waiting: {what}"
        time.sleep(0.05)


@contextmanager
def locked_sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's view of the store: a connection holding `BEGIN EXCLUSIVE` until the block
    ends (every write of callgate's waits, then gives up)."""
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()
