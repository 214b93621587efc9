"""A worker pool as deploy/ runs it, on loopback: Kamailio (deploy/kamailio/kamailio.cfg) in front
of `callgate serve` workers sharing one PostgreSQL, and sipp callers sending many calls through it.
Every process has a timeout and is stopped in a `finally`."""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from server.serving import ROOT, free_port

KAMAILIO_CFG = ROOT / "deploy" / "kamailio" / "kamailio.cfg"
SCENARIO = Path(__file__).parent / "scenarios" / "call_through_proxy.xml"
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"


def _modules_dir() -> str:
    found = sorted(str(p.parent) + "/" for p in Path("/usr/lib").glob("*/kamailio/modules/tm.so"))
    for candidate in (MODULES, *found):
        if Path(candidate, "tm.so").exists():
            return candidate
    raise AssertionError("Kamailio is not installed (`make test` installs Debian's kamailio)")


@dataclass
class Kamailio:
    port: int
    ctl: str
    dispatcher_list: Path
    proc: subprocess.Popen[str]

    def destinations(self) -> dict[str, str]:
        """Each worker URI and its dispatcher flags (`AP` active, `IP` inactive...)."""
        out = subprocess.run(
            ["kamcmd", "-s", self.ctl, "dispatcher.list"], capture_output=True, text=True, timeout=10
        ).stdout
        found = re.findall(r"URI: (sip:[^\s]+)\s+FLAGS: (\w+)", out)
        return dict(found)

    def wait_flags(self, wanted: dict[str, str], timeout: float = 60.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        seen: dict[str, str] = {}
        while time.monotonic() < deadline:
            seen = self.destinations()
            if all(seen.get(uri, "").startswith(flag) for uri, flag in wanted.items()):
                return seen
            time.sleep(0.2)
        raise AssertionError(f"dispatcher flags {seen}, wanted {wanted}")


@contextmanager
def kamailio(worker_ports: list[int], workdir: Path, *, ping_interval: int = 1) -> Iterator[Kamailio]:
    if shutil.which("kamailio") is None:
        raise AssertionError("Kamailio is not installed (`make test` installs Debian's kamailio)")
    port = free_port(socket.SOCK_DGRAM)
    dispatcher_list = workdir / "dispatcher.list"
    dispatcher_list.write_text("".join(f"1 sip:127.0.0.1:{p}\n" for p in worker_ports))
    ctl = f"unix:{workdir}/kamailio.ctl"
    args = [
        "kamailio", "-DD", "-E", "-f", str(KAMAILIO_CFG), "-Y", str(workdir), "-P", str(workdir / "pid"),
        "-A", f"LISTEN=udp:127.0.0.1:{port}", "-A", f'DS_LIST="{dispatcher_list}"',
        "-A", f'CTL_SOCKET="{ctl}"', "-A", f'MPATH="{_modules_dir()}"',
        "-A", f"DS_PING_INTERVAL={ping_interval}", "-A", "FR_TIMER=1500",
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    served = Kamailio(port, ctl, dispatcher_list, proc)
    try:
        deadline = time.monotonic() + 15
        while not (workdir / "kamailio.ctl").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("Kamailio did not start: " + (proc.stderr.read() if proc.stderr else ""))
            time.sleep(0.05)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class SippRun:
    successful: int
    failed: int
    returncode: int
    errors: str


def calls_through(
    port: int, calls: int, workdir: Path, *, rate: int = 10, limit: int = 30
) -> subprocess.Popen[str]:
    """Start sipp placing `calls` calls to 127.0.0.1:port (Kamailio); `finish()` waits for it."""
    sipp = shutil.which("sipp")
    assert sipp is not None, "sipp is not installed (`make test` installs sip-tester)"
    name = f"run{free_port()}"
    args = [
        sipp, "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(free_port(socket.SOCK_DGRAM)),
        "-mp", str(free_port(socket.SOCK_DGRAM)), "-m", str(calls), "-r", str(rate), "-l", str(limit),
        "-timeout", "120s", "-recv_timeout", "20000", "-nostdin",
        "-trace_stat", "-stf", str(workdir / f"{name}.csv"), "-fd", "1",
        "-trace_err", "-error_file", str(workdir / f"{name}.errors.log"),
        f"127.0.0.1:{port}",
    ]  # fmt: skip
    proc = subprocess.Popen(
        args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={"TERM": "dumb"}
    )
    proc.name = name  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen[str], workdir: Path, timeout: float = 150.0) -> SippRun:
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    name = proc.name  # type: ignore[attr-defined]
    rows = list(csv.DictReader((workdir / f"{name}.csv").read_text().splitlines(), delimiter=";"))
    last = rows[-1]
    errors = workdir / f"{name}.errors.log"
    return SippRun(
        successful=int(last["SuccessfulCall(C)"]),
        failed=int(last["FailedCall(C)"]),
        returncode=proc.returncode,
        errors=errors.read_text()[-3000:] if errors.exists() else "",
    )


@contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="callgate-pool-") as name:
        os.chmod(name, 0o755)
        yield Path(name)


def kill(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
