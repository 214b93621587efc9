"""A real routing server on 127.0.0.1 (http.server in a thread) for the Vapi destination tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"{}"
    delay: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RoutingServer:
    port: int
    received: list[Received] = field(default_factory=list)
    answer: Callable[[Received], Reply] = lambda _request: Reply()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/transfer"

    def reply_json(self, data: Any, status: int = 200) -> None:
        self.answer = lambda _request: Reply(status, json.dumps(data).encode())


@pytest.fixture
def routing_server() -> Iterator[RoutingServer]:
    holder: dict[str, RoutingServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            request = Received(
                self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
            )
            server = holder["server"]
            server.received.append(request)
            reply = server.answer(request)
            if reply.delay:
                time.sleep(reply.delay)
            try:
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (timeout tests)

        def log_message(self, format: str, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    holder["server"] = RoutingServer(port=httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield holder["server"]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
