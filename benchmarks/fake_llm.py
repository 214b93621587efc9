"""A loopback OpenAI-protocol streaming server for the speed benchmarks (standard library only).

    python benchmarks/fake_llm.py [--port 0] [--gap-ms 20] [--close]

Prints `PORT <n>` once it listens. Every `POST …/chat/completions` gets the same reply,
`Okay. <imsagent_hangup …/>`, as 7 content chunks (`REPLY_CHUNKS`) 20 ms apart, as chunked
server-sent events on a kept-alive HTTP/1.1 connection (`--close` closes it after every reply).

It stamps, on CLOCK_MONOTONIC (system-wide, so comparable with the client's `time.monotonic_ns()`),
the first byte of each request and the write of each content chunk. Requests are told apart by the
tag `[t…]` at the end of the newest user message; `GET /stamps` returns
`{tag: {"first_byte": ns, "writes": [ns, …]}}` for every tagged request so far.

Runs in its own process, so its CPU is never counted as the client's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import time
from typing import Any

REPLY_CHUNKS = [
    "Okay.",
    " <imsagent_hangup",
    ' endword="Bye"',
    ' reason="done"',
    ' by="agent"',
    ' code="0"',
    " />",
]
SENTENCE_END_CHUNKS = {"Okay.": 0, "".join(REPLY_CHUNKS[1:]).strip(): len(REPLY_CHUNKS) - 1}
"""The spoken sentences of the reply and the index of the chunk that completes each."""

_TAG = re.compile(r"\[(t[^\]]+)\]\s*$")
_HEADERS = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n"
)


def _frame(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    body = f"data: {text}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(body), body)


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: bool = False) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "bench",
        "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        chunk["usage"] = {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}
    return chunk


ROLE_FRAME = _frame(_chunk({"role": "assistant", "content": ""}))
CONTENT_FRAMES = [_frame(_chunk({"content": text})) for text in REPLY_CHUNKS]
FINISH_FRAME = _frame(_chunk({}, finish="stop"))
USAGE_FRAME = _frame(_chunk({}, usage=True))
DONE_FRAME = _frame("[DONE]") + b"0\r\n\r\n"


class Stamps:
    def __init__(self) -> None:
        self.by_tag: dict[str, dict[str, Any]] = {}


class _Connection(asyncio.Protocol):
    def __init__(self, stamps: Stamps, gap: float, close_after: bool) -> None:
        self.stamps = stamps
        self.gap = gap
        self.close_after = close_after
        self.buffer = b""
        self.first_byte: int | None = None
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.first_byte is None:
            self.first_byte = time.monotonic_ns()
        self.buffer += data
        self._parse()

    def _parse(self) -> None:
        if self.busy:
            return
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buffer[:head_end].decode("latin-1")
        request_line, *header_lines = head.split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(self.buffer) < head_end + 4 + length:
            return
        body = self.buffer[head_end + 4 : head_end + 4 + length]
        self.buffer = self.buffer[head_end + 4 + length :]
        first_byte, self.first_byte = self.first_byte, (time.monotonic_ns() if self.buffer else None)
        method, path, _ = request_line.split(" ", 2)
        if method == "GET" and path.endswith("/stamps"):
            self._send_json(self.stamps.by_tag)
        elif method == "POST" and path.endswith("/chat/completions"):
            self._stream(body, first_byte or time.monotonic_ns())
        else:
            self._send_json({"error": "not found"}, status=b"404 Not Found")

    def _send_json(self, payload: Any, status: bytes = b"200 OK") -> None:
        assert self.transport is not None
        body = json.dumps(payload).encode()
        self.transport.write(
            b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (status, len(body), body)
        )

    def _stream(self, body: bytes, first_byte: int) -> None:
        assert self.transport is not None
        tag = None
        try:
            request = json.loads(body)
            for message in reversed(request.get("messages") or []):
                if message.get("role") == "user":
                    content = message.get("content")
                    if isinstance(content, list):  # content parts
                        content = " ".join(str(part.get("text", "")) for part in content)
                    found = _TAG.search(str(content or ""))
                    tag = found.group(1) if found else None
                    break
        except (ValueError, AttributeError):
            pass
        record: dict[str, Any] = {"first_byte": first_byte, "writes": []}
        if tag is not None:
            self.stamps.by_tag[tag] = record
        self.busy = True
        connection = b"connection: close\r\n\r\n" if self.close_after else b"connection: keep-alive\r\n\r\n"
        self.transport.write(_HEADERS + connection + ROLE_FRAME)
        self._write_content(0, record)

    def _write_content(self, index: int, record: dict[str, Any]) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        record["writes"].append(time.monotonic_ns())  # before the write: the reader may be quicker
        transport.write(CONTENT_FRAMES[index])
        if index + 1 < len(CONTENT_FRAMES):
            asyncio.get_running_loop().call_later(self.gap, self._write_content, index + 1, record)
            return
        transport.write(FINISH_FRAME + USAGE_FRAME + DONE_FRAME)
        self.busy = False
        if self.close_after:
            transport.close()
        elif self.buffer:
            self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int, gap: float, close_after: bool) -> None:
    stamps = Stamps()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(stamps, gap, close_after), "127.0.0.1", port, backlog=2048
    )
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--gap-ms", type=float, default=20.0, help="time between content chunks")
    parser.add_argument("--close", action="store_true", help="close the connection after every reply")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.gap_ms / 1000.0, args.close))


if __name__ == "__main__":
    main()
