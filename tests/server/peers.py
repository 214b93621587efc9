"""Peers for `callgate serve` tests: the scripted model and an agent-document server in threads,
and sipp callers. Every process has a timeout and is killed in a `finally`."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from callgate.scenario.model_server import Classifier, ScriptedModelServer
from callgate.speech.codecs import decode
from sip_channel.peers import Captured, read_pcap  # tests/ is on sys.path (rootdir packages)

from .serving import free_port

SCENARIOS = Path(__file__).parent / "scenarios"


class ModelThread:
    """The scripted OpenAI-protocol model server, on its own event loop in a thread."""

    def __init__(self, scripts: dict[str, list[dict[str, Any]]], classify: Classifier | None = None) -> None:
        self.scripts = scripts
        self.classify = classify
        self.server: ScriptedModelServer | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with ScriptedModelServer(self.scripts, classify=self.classify) as server:
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


@dataclass
class DocumentServer:
    """Serves an agent document per call, chosen from the call's details (SignalWire's POST)."""

    choose: Callable[[dict[str, Any]], dict[str, Any]]
    url: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def document_server(choose: Callable[[dict[str, Any]], dict[str, Any]]) -> Iterator[DocumentServer]:
    state = DocumentServer(choose)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            call = body.get("call", {}) if isinstance(body, dict) else {}
            state.calls.append(call)
            payload = json.dumps(state.choose(call)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http_thread(Handler) as base:
        state.url = f"{base}/agent"
        yield state


@contextmanager
def http_thread(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """An HTTP server on a free loopback port in a thread, for the block; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class Sipp:
    """One sipp call of a scenario in tests/server/scenarios against 127.0.0.1:port."""

    def __init__(
        self, scenario: str, port: int, workdir: Path, *, timeout: float = 30.0, **keys: str
    ) -> None:
        sipp = shutil.which("sipp")
        assert sipp is not None, "sipp is not installed: `make system-deps` installs it"
        self.name = f"{Path(scenario).stem}-{free_port()}"
        self.sip_port = free_port(2)  # SOCK_DGRAM
        self.media_port = free_port(2)
        self.errors = workdir / f"{self.name}.errors.log"
        args = [
            sipp, "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1",
            "-p", str(self.sip_port), "-mp", str(self.media_port),
            "-m", "1", "-timeout", f"{int(timeout)}s", "-timeout_error",
            "-recv_timeout", str(int(timeout * 1000)), "-nostdin",
            "-trace_err", "-error_file", str(self.errors),
            f"127.0.0.1:{port}",
        ]  # fmt: skip
        for key, value in keys.items():
            args += ["-key", key, value]
        self.timeout = timeout
        self.process = subprocess.Popen(
            args, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={"TERM": "dumb"}
        )

    def wait(self) -> int:
        try:
            self.process.communicate(timeout=self.timeout + 15)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.communicate(timeout=10)
        return self.process.returncode

    def explain(self) -> str:
        return self.errors.read_text() if self.errors.exists() else ""


@contextmanager
def capturing(ports: list[int], path: Path) -> Iterator[list[Captured]]:
    """UDP on lo for `ports`, captured by dumpcap (tshark's engine); the list fills when the block ends."""
    dumpcap = shutil.which("dumpcap")
    assert dumpcap is not None, "dumpcap is not installed: `make system-deps` installs tshark"
    capture_filter = " or ".join(f"udp port {port}" for port in ports)
    process = subprocess.Popen(
        ["timeout", "120", dumpcap, "-i", "lo", "-P", "-q", "-f", capture_filter, "-w", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    packets: list[Captured] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:  # "Capturing on 'Loopback: lo'" once packets are being taken
            if "Capturing on" in line:
                break
        else:
            raise AssertionError("dumpcap exited before capturing")
        time.sleep(0.2)
        yield packets
        time.sleep(0.3)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    packets.extend(read_pcap(path))


def voiced_seconds(packets: list[Captured], media_port: int, *, before: float | None = None) -> float:
    """How much audible PCMU speech (20 ms frames above a low level) reached `media_port`."""
    frames = 0
    for packet in packets:
        if packet.dst_port != media_port or len(packet.payload) < 12 or packet.payload[1] & 0x7F != 0:
            continue
        if before is not None and packet.at > before:
            continue
        pcm = np.frombuffer(decode(packet.payload[12:], "PCMU"), dtype="<i2").astype(np.float64)
        if pcm.size and float(np.sqrt(np.mean(pcm**2))) > 300:
            frames += 1
    return frames * 0.02


def first_sip(packets: list[Captured], port: int, method: str) -> float:
    """When the first SIP request `method` reached `port`."""
    for packet in packets:
        if packet.dst_port == port and packet.payload.startswith(method.encode() + b" "):
            return packet.at
    raise AssertionError(f"no {method} reached port {port}")
