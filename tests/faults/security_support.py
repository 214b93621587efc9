"""Shared parts of the guard, policy and credential fault tests: a recording loopback HTTP server,
the scripted model server in a thread (for the real CLI), fake resolvers and a recording network
backend for the guarded transport."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpcore
import httpx

from callgate.agent.decisions import DynamicTarget, Transfer
from callgate.channels.sim import SimWorld
from callgate.control.controller import CallController
from callgate.control.destinations import DestinationClient
from callgate.control.policy import DestinationPolicy
from callgate.swaig.urlguard import IPAddress
from callgate.telephony.clock import VirtualClock, run_virtual
from callgate.timeline import CallOutcome
from server.peers import ModelThread  # tests/ is on sys.path (rootdir packages)

__all__ = ["ModelThread"]

ROOT = Path(__file__).resolve().parents[2]
CALLGATE = ROOT / ".venv" / "bin" / "callgate"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A real HTTP server on 127.0.0.1 (ephemeral port) that records every request and answers
    each path with the JSON it was given (default `{"response": "ok"}`), or with what a function of
    the request returns."""

    def __init__(self, answers: dict[str, Any] | None = None) -> None:
        self.answers: dict[str, Any] = dict(answers or {})
        self.requests: list[Seen] = []
        receiver = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                seen = Seen(self.command, self.path, headers, body)
                receiver.requests.append(seen)
                answer = receiver.answers.get(self.path.split("?", 1)[0], {"response": "ok"})
                data = answer(seen) if callable(answer) else answer
                payload = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def run_cli(
    args: list[str], *, env: dict[str, str] | None = None, stdin: str = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `callgate ARGS` as a user would (a real process, killed if it outlives `timeout`)."""
    return subprocess.run(
        [str(CALLGATE), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )


def chat(
    agent: Path | str, lines: list[str], model_url: str, store: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`callgate chat AGENT` (a file or a URL) with typed lines; stdin stays open so the agent ends
    the call."""
    env = {**os.environ, "CALLGATE_LLM_URL": model_url, "CALLGATE_DB": str(store), "OPENAI_API_KEY": "test"}
    proc = subprocess.Popen(
        [str(CALLGATE), "chat", str(agent), "--from", "+15551230000", "--to", "+15559870000"],
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
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"callgate chat did not finish within {timeout} s:\n{out}\n{err}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fixed_resolver(table: dict[str, list[str]]) -> Callable[[str, int], Any]:
    """A resolver answering from `table` (an unknown name does not resolve)."""

    async def resolve(host: str, port: int) -> list[IPAddress]:
        if host not in table:
            raise OSError(f"no such host {host}")
        return [ipaddress.ip_address(a) for a in table[host]]

    return resolve


class SequenceResolver:
    """Answers each look-up of a name with the next answer in line (DNS rebinding)."""

    def __init__(self, answers: list[list[str]]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [ipaddress.ip_address(a) for a in answer]


class _RecordingStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, tls_names: list[str | None]) -> None:
        self._inner = inner
        self._tls_names = tls_names

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        self._tls_names.append(server_hostname)
        return await self._inner.start_tls(ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """The real network backend, recording where each connection goes. `route` maps an address
    the guard checked to where the test's loopback server really is (a NAT, as between a public
    address and its server); addresses not in `route` are refused without any network."""

    def __init__(self, route: dict[str, tuple[str, int]] | None = None) -> None:
        self.route = dict(route or {})
        self.connects: list[tuple[str, int]] = []
        self.tls_names: list[str | None] = []
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        if host not in self.route:
            raise httpcore.ConnectError(f"test network: {host} is unreachable")
        real_host, real_port = self.route[host]
        stream = await self._inner.connect_tcp(real_host, real_port, timeout, local_address, socket_options)
        return _RecordingStream(stream, self.tls_names)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("no unix sockets here")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def sim_controller(
    world: SimWorld,
    clock: VirtualClock,
    policy: DestinationPolicy,
    destinations: DestinationClient | None = None,
) -> CallController:
    """The call controller of a simulated call, with `policy` (and a destination server client)."""
    return CallController(
        world.caller,
        world.switch,
        clock,
        CallOutcome(timeline=world.timeline),
        world.started_at,
        policy=policy,
        destinations=destinations,
    )


def dynamic_transfer(
    url: str, model_values: Iterable[str], legs: dict[str, dict[str, Any]], caller: str
) -> tuple[str | None, list[str]]:
    """A dynamic (Vapi) transfer asking the destination server at `url`, on a simulated call from
    `caller`, the model having said `model_values`: (the result's code, the timeline's kinds)."""

    async def main(clock: VirtualClock) -> tuple[str | None, list[str]]:
        world = SimWorld(clock, legs=legs, from_number=caller)
        async with httpx.AsyncClient() as http:
            policy = DestinationPolicy(caller_number=caller)
            controller = sim_controller(world, clock, policy, DestinationClient(http, allow_private=True))
            await controller.answer()
            target = DynamicTarget(url=url, model_values=frozenset(model_values))
            transfer = Transfer("", "builtin", dynamic=target, origin="server")
            result = await controller.execute_transfer(transfer)
        return result.code, [e.kind for e in world.timeline.events]

    return run_virtual(main)
