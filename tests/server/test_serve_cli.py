"""`callgate serve` as a process: listeners, /healthz, JSON logs, drain on SIGTERM, bad input."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

from .serving import CALLGATE, ROOT, free_port, serving

AGENT = ROOT / "examples/agents/ims_agent.yaml"


def test_http_only_serves_healthz_and_drains_on_sigterm(tmp_path: Path) -> None:
    env = {"CALLGATE_DB": str(tmp_path / "calls.db")}
    with serving(AGENT, env=env) as served:
        started = served.wait_log(msg="serving")
        assert started["sip"] is None and started["http"] == f"127.0.0.1:{served.http_port}"
        response = served.health()
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "active_calls": 0, "draining": False}
        assert served.stop(signal.SIGTERM) == 0
    assert served.logs(msg="drain requested (SIGTERM)")
    assert served.logs(msg="stopped")[0]["ended_by_drain"] == []
    # Every line on stderr is one JSON object.
    assert served.raw and all(json.loads(line) for line in served.raw)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CALLGATE), "serve", *args], capture_output=True, text=True, timeout=60)


def test_a_broken_agent_is_refused_before_anything_listens(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("sections:\n  main:\n    - ai:\n        prompt: {text: 5, temperature: hot}\n")
    result = _run(str(broken), "--http", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2
    assert "broken.yaml" in result.stderr and "temperature" in result.stderr
    missing = _run(str(tmp_path / "nope.yaml"), "--http", f"127.0.0.1:{free_port()}")
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr


def test_bad_listen_addresses_are_clear_errors() -> None:
    result = _run(str(AGENT), "--http", "localhost")
    assert result.returncode == 2 and "HOST:PORT" in result.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = _run(str(AGENT), "--http", f"127.0.0.1:{port}")
    assert busy.returncode == 2
    error = next(json.loads(line) for line in busy.stderr.splitlines() if "cannot listen" in line)
    assert error["level"] == "error" and str(port) in error["msg"]
