"""Run `callgate serve` as a user does: a real process on free loopback ports, stopped by signal."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
CALLGATE = ROOT / ".venv" / "bin" / "callgate"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    proc: subprocess.Popen[str]
    http_port: int | None
    sip_port: int | None
    lines: list[dict[str, Any]] = field(default_factory=list)  # JSON log records so far
    raw: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def logs(self, **match: Any) -> list[dict[str, Any]]:
        return [line for line in list(self.lines) if all(line.get(k) == v for k, v in match.items())]

    def wait_log(self, timeout: float = 30.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.logs(**match)
            if found:
                return found[0]
            if self.proc.poll() is not None and (self._reader is None or not self._reader.is_alive()):
                break
            time.sleep(0.05)
        raise AssertionError(f"no log line {match}; stderr:\n" + "\n".join(self.raw[-40:]))

    def wait_until(self, check: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError("timed out; stderr:\n" + "\n".join(self.raw[-40:]))
            time.sleep(0.05)

    def health(self) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.http_port}/healthz", timeout=5)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            if self._reader is not None:
                self._reader.join(timeout=10)


def _read(served: Served) -> None:
    assert served.proc.stderr is not None
    for line in served.proc.stderr:
        served.raw.append(line.rstrip("\n"))
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            served.lines.append(record)


@contextmanager
def serving(
    agent: str | Path,
    *,
    http: bool = True,
    sip: bool = False,
    env: dict[str, str] | None = None,
    extra: list[str] | None = None,
) -> Iterator[Served]:
    """`callgate serve AGENT` with --http and/or --sip on free ports; ready once it logs `serving`."""
    http_port = free_port() if http else None
    sip_port = free_port(socket.SOCK_DGRAM) if sip else None
    command = [str(CALLGATE), "serve", str(agent)]
    if http_port is not None:
        command += ["--http", f"127.0.0.1:{http_port}"]
    if sip_port is not None:
        command += ["--sip", f"127.0.0.1:{sip_port}"]
    command += extra or []
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    served = Served(proc, http_port, sip_port)
    served._reader = threading.Thread(target=_read, args=(served,), daemon=True)
    served._reader.start()
    try:
        served.wait_log(msg="serving")
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait(timeout=10)
        served._reader.join(timeout=10)
