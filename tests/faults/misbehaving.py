"""A misbehaving document server on 127.0.0.1 (ephemeral port), in a thread, for the document and
scenario-runner fault tests. Each path is one way to misbehave:

- `/drip`: status and headers at once, then one byte of body every `drip_every` seconds, forever;
- `/endless`: a body that never ends, sent as fast as the client reads it (chunked);
- `/silent`: accepts the request and never answers;
- `/doc/NAME`: the text registered as `docs[NAME]` (a YAML or JSON document, or anything else).

Every request is counted in `hits`. Endless handlers stop when the server does (or the client
goes away), so nothing outlives the test.
"""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_CHUNK = b"x" * 65536


class MisbehavingServer:
    def __init__(self, docs: dict[str, str] | None = None, *, drip_every: float = 2.0) -> None:
        self.docs = dict(docs or {})
        self.drip_every = drip_every
        self.hits: Counter[str] = Counter()
        self.stopping = threading.Event()
        owner = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                owner.hits[path] += 1
                try:
                    if path == "/drip":
                        self._drip()
                    elif path == "/endless":
                        self._endless()
                    elif path == "/silent":
                        owner.stopping.wait(120)
                    elif path.startswith("/doc/") and path[5:] in owner.docs:
                        self._send(200, owner.docs[path[5:]].encode(), "application/yaml")
                    else:
                        self._send(404, b"no such document", "text/plain")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up: that is the point

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _drip(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/yaml")
                self.send_header("content-length", "100000")
                self.end_headers()
                self.wfile.write(b"sections:\n  main: []\n#")
                self.wfile.flush()
                while not owner.stopping.wait(owner.drip_every):
                    self.wfile.write(b"x")
                    self.wfile.flush()

            def _endless(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/yaml")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"%x\r\n#%s\r\n" % (len(_CHUNK) + 1, _CHUNK))
                while not owner.stopping.is_set():
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(_CHUNK), _CHUNK))

            do_GET = do_POST = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str, *, userinfo: str = "") -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"http://{at}127.0.0.1:{self.port}{path}"

    def __enter__(self) -> MisbehavingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
