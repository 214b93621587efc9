"""A real HTTP server on 127.0.0.1 standing in for example.com, and helpers to build runtimes."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from callgate.swaig import CallContext, FixedClock, FunctionRuntime
from callgate.swml.models import AI

# 2026-11-22 15:04:05 UTC: a fixed moment for check_time and log times.
EPOCH = 1795359845.0


@dataclass
class Recorded:
    method: str
    path: str  # raw path with query, exactly as sent
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        value = self.headers.get("authorization", "")
        if not value.lower().startswith("basic "):
            return None
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        return user, password


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Wait this long before answering (a hung server), or between body chunks (a slow body).
    delay: float = 0.0
    drip: float = 0.0
    content_type: str = "application/json"


Handler = Callable[[Recorded], Reply]


class LoopServer:
    """ThreadingHTTPServer on an ephemeral loopback port; routes by method and path (no query)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Reply | Handler] = {}
        self.requests: list[Recorded] = []
        server = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                rec = Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                server.requests.append(rec)
                route = server.routes.get((self.command, urlsplit(self.path).path))
                reply = Reply(404, {"error": "no route"}) if route is None else route
                if callable(reply):
                    reply = reply(rec)
                payload = reply.body
                if not isinstance(payload, bytes | str):
                    payload = json.dumps(payload)
                data = payload.encode() if isinstance(payload, str) else payload
                try:
                    if reply.delay:
                        time.sleep(reply.delay)
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    if reply.drip:
                        for i in range(len(data)):
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                            time.sleep(reply.drip)
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = _serve
            do_POST = _serve
            do_PUT = _serve
            do_DELETE = _serve

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self.port = self._httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def route(self, method: str, path: str, reply: Reply | Handler) -> None:
        self.routes[(method, path)] = reply

    def only(self, method: str, path: str) -> Recorded:
        found = [r for r in self.requests if r.method == method and urlsplit(r.path).path == path]
        assert len(found) == 1, f"expected one {method} {path}, got {[r.path for r in self.requests]}"
        return found[0]


@pytest.fixture
def server() -> Iterator[LoopServer]:
    srv = LoopServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_ai(document: str, base: str, *, allow_private: bool = True) -> AI:
    """The `ai` verb of a SWML YAML document, with example.com URLs pointed at `base`."""
    text = document.replace("https://example.com", base).replace("https://example/", base + "/")
    data = yaml.safe_load(text)
    ai = data["sections"]["main"][0]["ai"]
    if allow_private:
        ai.setdefault("params", {})["swaig_allow_private_urls"] = True
    return AI.model_validate(ai)


def make_context(**overrides: Any) -> CallContext:
    values: dict[str, Any] = {
        "call_id": "call-1",
        "ai_session_id": "session-1",
        "caller_id_num": "+15551230000",
        "caller_id_name": "Ann",
        "to_number": "+15559870000",
        "project_id": "project-1",
        "space_id": "space-1",
    }
    values.update(overrides)
    return CallContext(**values)


def make_runtime(ai: AI, http: httpx.AsyncClient, **kwargs: Any) -> FunctionRuntime:
    context = kwargs.pop("context", None) or make_context()
    kwargs.setdefault("clock", FixedClock(EPOCH))
    kwargs.setdefault("timeout", 5.0)
    return FunctionRuntime(ai, context, http, **kwargs)


def tool_names(runtime: FunctionRuntime) -> list[str]:
    return [tool["function"]["name"] for tool in runtime.tools()]
