"""A misbehaving OpenAI-protocol model on loopback: chat-completions answered as server-sent events,
each request by the next behaviour in line — a word trickled every few seconds forever, an empty
reply, a tool call without a name, a tool call every time.

It runs on the test's own event loop (virtual time): a trickle's pauses are `asyncio.sleep`s that
the virtual clock skips, so a reply "dripping for minutes" costs milliseconds and no timing is
asserted. Plain asyncio streams, HTTP/1.1 with the body delimited by closing the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

Behaviour = Callable[[], AsyncIterator[dict[str, Any]]]
"""One reply: the `delta` dicts to stream (a `finish` key ends the reply with that finish_reason).
Special items: `{"status": N}` first answers HTTP N instead of a stream, `{"raw": "..."}` is sent as
is, `{"cut": True}` drops the connection."""


def text(words: str) -> Behaviour:
    async def reply() -> AsyncIterator[dict[str, Any]]:
        for word in words.split(" "):
            yield {"content": word + " "}
        yield {"finish": "stop"}

    return reply


def trickle(word: str = "and", every: float = 5.0) -> Behaviour:
    """A word every `every` seconds, forever, never a finish."""

    async def reply() -> AsyncIterator[dict[str, Any]]:
        while True:
            yield {"content": word + " "}
            await asyncio.sleep(every)

    return reply


def empty() -> Behaviour:
    async def reply() -> AsyncIterator[dict[str, Any]]:
        yield {"finish": "stop"}

    return reply


def tool_call(name: str, arguments: str = "{}") -> Behaviour:
    """One tool call; `name=""` streams a call with no function name at all."""

    async def reply() -> AsyncIterator[dict[str, Any]]:
        function: dict[str, Any] = {"arguments": arguments}
        if name:
            function["name"] = name
        yield {"tool_calls": [{"index": 0, "id": "call_x", "type": "function", "function": function}]}
        yield {"finish": "tool_calls"}

    return reply


def status(code: int) -> Behaviour:
    async def reply() -> AsyncIterator[dict[str, Any]]:
        yield {"status": code}

    return reply


def cut(words: str) -> Behaviour:
    """Some words, then the connection drops (no finish, no [DONE])."""

    async def reply() -> AsyncIterator[dict[str, Any]]:
        for word in words.split(" "):
            yield {"content": word + " "}
        yield {"cut": True}

    return reply


def garbage() -> Behaviour:
    async def reply() -> AsyncIterator[dict[str, Any]]:
        yield {"raw": "data: {this is not json\n\n"}
        yield {"finish": "stop"}

    return reply


def stall() -> Behaviour:
    """The headers, then nothing, ever."""

    async def reply() -> AsyncIterator[dict[str, Any]]:
        await asyncio.Event().wait()
        yield {"finish": "stop"}  # never reached

    return reply


@dataclass
class MisbehavingModel:
    """`async with MisbehavingModel([...]) as model:` — `model.base_url` for the client; request N
    gets behaviour N (the last one repeats). `requests` keeps each request's JSON body."""

    behaviours: list[Behaviour]
    requests: list[dict[str, Any]] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aenter__(self) -> MisbehavingModel:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = json.loads(await reader.readexactly(length)) if length else {}
            self.requests.append(body)
            behaviour = self.behaviours[min(len(self.requests), len(self.behaviours)) - 1]
            replies = behaviour()
            first = await anext(replies, None)
            if first is not None and "status" in first:
                payload = json.dumps({"error": {"message": "scripted failure"}}).encode()
                head = (
                    f"HTTP/1.1 {first['status']} Error\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n"
                )
                writer.write(head.encode() + payload)
                await writer.drain()
                return
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
            async for delta in _chain(first, replies):
                if delta.get("cut"):
                    writer.transport.abort()
                    return
                if "raw" in delta:
                    writer.write(str(delta["raw"]).encode())
                    continue
                finish = delta.pop("finish", None)
                chunk = {
                    "id": "chatcmpl-fault",
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
                writer.write(f"data: {json.dumps(chunk)}\n\n".encode())
                await writer.drain()
            writer.write(b"data: [DONE]\n\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up on the reply: that is what the tests want to see
        finally:
            self._writers.discard(writer)
            writer.close()


async def _chain(
    first: dict[str, Any] | None, rest: AsyncIterator[dict[str, Any]]
) -> AsyncIterator[dict[str, Any]]:
    if first is not None:
        yield first
    async for item in rest:
        yield item
