"""A loopback report receiver (http.server in a thread) that can fail, stall, be slow, and dedupe by key."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    url: str = ""
    fail_first: int = 0  # answer 503 to this many requests first
    always_status: int | None = None  # answer every request with this status
    stall_first: bool = False  # hold the first request open until `release` is set
    delay: float = 0.0  # a slow receiver: seconds before answering each request
    requests: list[Received] = field(default_factory=list)
    accepted: dict[str, Any] = field(default_factory=dict)  # idempotency key → payload, first copy only
    duplicates: int = 0
    first_arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: dict[str, str], body: Any) -> int:
        with self.lock:
            self.requests.append(Received(headers, body))
            index = len(self.requests)
        if index == 1:
            self.first_arrived.set()
            if self.stall_first:
                self.release.wait(30)
                return 503
        if self.delay:
            self.release.wait(self.delay)  # (set at shutdown: stop waiting)
        if self.always_status is not None:
            return self.always_status
        if index <= self.fail_first:
            return 503
        key = headers.get("idempotency-key", "")
        with self.lock:
            if key in self.accepted:
                self.duplicates += 1  # already have it: acknowledge, do not process again
            else:
                self.accepted[key] = body
        return 200


@contextmanager
def running_receiver(receiver: Receiver | None = None) -> Iterator[Receiver]:
    state = receiver or Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = raw.decode(errors="replace")
            status = state.handle({k.lower(): v for k, v in self.headers.items()}, body)
            payload = b'{"response": "ok"}'
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the sender is gone (killed mid-delivery)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/report"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
