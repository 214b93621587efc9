"""The scripted model of scenarios, served over the real OpenAI streaming protocol on loopback.

Each role (`agent`, `summary`, `consult`, `post_prompt`, …) has its own script and its own base URL,
`http://127.0.0.1:PORT/<role>/v1`; request N of a role is answered by entry N of its script, as
`data: {chat.completion.chunk}` server-sent events ending with `data: [DONE]`.

Script entries are the `llm` entries of scenario files (DESIGN §6): `text`, `tool_calls`, `match`,
`chunk`, `style`. callgate adds failure modes so that clients can be tested against a misbehaving
endpoint (scenario extensions, documented on `ScriptEntry`): `status`, `cut_after`, `stall`, `garbage`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import uvicorn
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# ---------------------------------------------------------------- the script format


class ScriptToolCall(BaseModel):
    """A tool call the scripted model makes. `arguments` may be an object or raw (even broken) JSON."""

    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


class ScriptEntry(BaseModel):
    """One reply of the scripted model.

    DESIGN §6 fields:
    - `text`: what the model says (may contain IMS text commands).
    - `tool_calls`: `[{name, arguments}]` (optionally `id`).
    - `match`: a regex searched in the newest user or tool message; a mismatch records a failure and
      the request is answered HTTP 500.
    - `chunk`: stream the text in N-character chunks (default: word by word).
    - `style`: `standard` (index-based tool-call deltas) or `repeated` (every chunk repeats the whole
      tool call, as the example server of the IMS docs does).

    callgate extensions, to test clients against a failing endpoint:
    - `status: 429|500|…`: answer with that HTTP error instead of a stream (`message`: its text).
    - `cut_after: N`: stream N characters of `text`, then drop the connection without `[DONE]`.
    - `stall: true`: send the response headers, then nothing until the client gives up.
    - `stall_after: N`: stream N characters of `text`, then nothing more (a model hanging mid-reply).
    - `garbage: true`: send a data line that is not JSON before the reply.
    """

    model_config = ConfigDict(extra="forbid")

    text: str | None = None
    tool_calls: list[ScriptToolCall] = Field(default_factory=list)
    match: str | None = None
    chunk: int | None = Field(default=None, ge=1)
    style: Literal["standard", "repeated"] = "standard"
    status: int | None = Field(default=None, ge=400, le=599)
    message: str | None = None
    cut_after: int | None = Field(default=None, ge=0)
    stall: bool = False
    stall_after: int | None = Field(default=None, ge=0)
    garbage: bool = False

    @field_validator("match")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
        return value

    @field_validator("text", mode="before")
    @classmethod
    def _text_as_string(cls, value: Any) -> Any:
        # YAML turns `text: 42` or `text: yes` into numbers and booleans; the author meant words.
        return str(value) if isinstance(value, int | float | bool) else value

    @model_validator(mode="after")
    def _one_failure_mode(self) -> ScriptEntry:
        modes = [
            self.status is not None,
            self.cut_after is not None,
            self.stall,
            self.stall_after is not None,
            self.garbage,
        ]
        if sum(modes) > 1:
            raise ValueError("use at most one of status, cut_after, stall, stall_after, garbage in one entry")
        if self.message is not None and self.status is None:
            raise ValueError("message is the text of an HTTP error: it needs status")
        return self


# ---------------------------------------------------------------- what the server saw


@dataclass(frozen=True)
class RecordedRequest:
    """One chat-completions request as received. `number` counts from 1 within the role."""

    role: str
    number: int
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    settings: dict[str, Any] = field(default_factory=dict)


class _DropConnection(Exception):
    """Raised inside a streaming body to make uvicorn drop the connection mid-stream."""


class _QuietDrops(logging.Filter):
    """Keep uvicorn from logging a traceback for connections dropped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _DropConnection)


_REQUEST_KEYS = {"messages", "tools"}
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


def _who(role: str) -> str:
    return "the caller's agent" if role == "agent" else f"the {role} model"


def _newest_user_or_tool(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") in ("user", "tool"):
            content = message.get("content")
            if isinstance(content, list):  # content parts
                return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
            return "" if content is None else str(content)
    return ""


def _pieces(text: str, size: int | None) -> list[str]:
    """Split text into N-character chunks, or word by word (each word keeps its trailing space)."""
    if not text:
        return []
    if size is not None:
        return [text[i : i + size] for i in range(0, len(text), size)]
    return re.findall(r"\s*\S+\s*|\s+", text)


# ---------------------------------------------------------------- the server

SHARED = "shared"  # the base-URL role whose requests `classify` sorts into roles
Classifier = Callable[[list[dict[str, Any]], Any], str]
"""(messages, tools) of one request → the role whose script answers it."""


class ScriptedModelServer:
    """An OpenAI-compatible streaming endpoint that answers from scripts, one per role.

    Use as an async context manager inside the running event loop:

        async with ScriptedModelServer({"agent": [ScriptEntry(text="Hi!")]}) as server:
            client = OpenAIChatModel(server.base_url("agent"), "test-key")
    """

    def __init__(
        self,
        scripts: Mapping[str, Sequence[ScriptEntry | Mapping[str, Any]]],
        *,
        classify: Classifier | None = None,
    ) -> None:
        """`classify` serves a process that sends every role to one base URL (`callgate serve` has
        one `llm_base_url`): requests to `base_url(SHARED)` are answered from the script of the role
        it names for the request's messages and tools."""
        self.classify = classify
        self.scripts: dict[str, list[ScriptEntry]] = {
            role: [
                entry if isinstance(entry, ScriptEntry) else ScriptEntry.model_validate(entry)
                for entry in entries
            ]
            for role, entries in scripts.items()
        }
        self.requests: list[RecordedRequest] = []
        self.failures: list[str] = []
        self._server: uvicorn.Server | None = None
        self._closing = asyncio.Event()
        self._port: int | None = None
        self._log_filter = _QuietDrops()
        self.app = Starlette(
            routes=[Route("/{role}/v1/chat/completions", self._completions, methods=["POST"])]
        )

    # ------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the scripted model server is not running")
        return self._port

    def base_url(self, role: str) -> str:
        return f"http://127.0.0.1:{self.port}/{role}/v1"

    async def start(self) -> None:
        """Listen on 127.0.0.1, on a free port, in the running event loop.

        uvicorn's `startup()`/`shutdown()` are used rather than `serve()`: no signal handlers are
        taken over, and there is no 0.1 s housekeeping tick to disturb a virtual-time loop.
        """
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        config.load()
        self._closing = asyncio.Event()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        logging.getLogger("uvicorn.error").addFilter(self._log_filter)
        try:
            await asyncio.wait_for(server.startup(), _START_TIMEOUT)
        except (SystemExit, TimeoutError) as exc:  # uvicorn exits the process when it cannot bind
            logging.getLogger("uvicorn.error").removeFilter(self._log_filter)
            raise RuntimeError("the scripted model server could not start") from exc
        self._server = server
        sockets = [sock for listener in server.servers for sock in listener.sockets]
        self._port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self._closing.set()  # releases stalled streams
        server, self._server = self._server, None
        if server is not None:
            try:
                await asyncio.wait_for(server.shutdown(), _STOP_TIMEOUT)
            except TimeoutError:
                for task in list(server.server_state.tasks):
                    task.cancel()
        logging.getLogger("uvicorn.error").removeFilter(self._log_filter)
        self._port = None

    async def __aenter__(self) -> ScriptedModelServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------ requests

    def requests_of(self, role: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.role == role]

    async def _completions(self, request: Request) -> Response:
        role = request.path_params["role"]
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "request body is not JSON", "invalid_request_error")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "request needs a `messages` list", "invalid_request_error")

        messages: list[dict[str, Any]] = body["messages"]
        tools = body.get("tools")
        if role == SHARED and self.classify is not None:
            role = self.classify(messages, tools)
        number = len(self.requests_of(role)) + 1
        settings = {key: value for key, value in body.items() if key not in _REQUEST_KEYS}
        self.requests.append(RecordedRequest(role, number, messages, tools, settings))

        script = self.scripts.get(role, [])
        if number > len(script):
            if role == "agent":
                failure = f"model request {number} of {_who(role)} has no script entry"
                self.failures.append(failure)
                return _error(500, failure, "server_error")
            entry = ScriptEntry(text="")
        else:
            entry = script[number - 1]

        if entry.match is not None:
            newest = _newest_user_or_tool(messages)
            if re.search(entry.match, newest) is None:
                failure = (
                    f"model request {number} of {_who(role)}: match /{entry.match}/ "
                    f"failed on the newest message {newest!r}"
                )
                self.failures.append(failure)
                return _error(500, failure, "server_error")

        if entry.status is not None:
            kind = "rate_limit_exceeded" if entry.status == 429 else "server_error"
            return _error(entry.status, entry.message or f"scripted HTTP {entry.status}", kind)

        model = str(body.get("model") or "scripted")
        stream_options = body.get("stream_options")
        usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
        reply = _Reply(entry, role, number, model, messages, usage, self._closing)
        if body.get("stream") is False:
            return JSONResponse(reply.whole())
        return StreamingResponse(reply.events(), media_type="text/event-stream")


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


class _Reply:
    """The chunks of one scripted reply."""

    def __init__(
        self,
        entry: ScriptEntry,
        role: str,
        number: int,
        model: str,
        messages: list[dict[str, Any]],
        usage: bool,
        closing: asyncio.Event,
    ) -> None:
        self.entry = entry
        self.model = model
        self.usage = usage
        self.closing = closing
        self.id = f"chatcmpl-{role}-{number}"
        self.created = int(time.time())
        self.calls: list[dict[str, Any]] = [
            {
                "id": call.id or f"call_{role}_{number}_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json()},
            }
            for index, call in enumerate(entry.tool_calls)
        ]
        self.prompt_tokens = sum(len(str(message.get("content") or "").split()) for message in messages)
        self.completion_tokens = len((entry.text or "").split()) + len(self.calls)
        self.finish_reason = "tool_calls" if self.calls else "stop"

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> str:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        return f"data: {json.dumps(chunk)}\n\n"

    def _usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def whole(self) -> dict[str, Any]:
        """The non-streaming form, for clients that ask for `stream: false`."""
        message: dict[str, Any] = {"role": "assistant", "content": self.entry.text or ""}
        if self.calls:
            message["tool_calls"] = self.calls
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
            "usage": self._usage(),
        }

    async def events(self) -> AsyncIterator[str]:
        entry = self.entry
        if entry.stall:
            await self.closing.wait()
            return
        yield self._chunk({"role": "assistant", "content": ""})
        if entry.garbage:
            yield "data: {this is not json\n\n"

        text_pieces = _pieces(entry.text or "", entry.chunk)
        limit = entry.cut_after if entry.cut_after is not None else entry.stall_after
        if limit is not None:
            sent = 0
            for piece in text_pieces:
                if sent >= limit:
                    break
                piece = piece[: limit - sent]
                sent += len(piece)
                yield self._chunk({"content": piece})
            if entry.cut_after is not None:
                raise _DropConnection("scripted cut")
            await self.closing.wait()
            return

        if entry.style == "repeated":
            for chunk in self._repeated(text_pieces):
                yield chunk
        else:
            for piece in text_pieces:
                yield self._chunk({"content": piece})
            for chunk in self._standard_calls():
                yield chunk
        yield self._chunk({}, self.finish_reason)
        if self.usage:
            usage_chunk = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": self._usage(),
            }
            yield f"data: {json.dumps(usage_chunk)}\n\n"
        yield "data: [DONE]\n\n"

    def _standard_calls(self) -> list[str]:
        """Index-based deltas: id, name and empty arguments first, then the arguments in pieces."""
        chunks: list[str] = []
        size = self.entry.chunk or 8
        for index, call in enumerate(self.calls):
            function = call["function"]
            head = {"index": index, "id": call["id"], "type": "function"}
            chunks.append(
                self._chunk(
                    {"tool_calls": [{**head, "function": {"name": function["name"], "arguments": ""}}]}
                )
            )
            arguments = function["arguments"]
            for start in range(0, len(arguments), size):
                fragment = {"index": index, "function": {"arguments": arguments[start : start + size]}}
                chunks.append(self._chunk({"tool_calls": [fragment]}))
        return chunks

    def _repeated(self, text_pieces: list[str]) -> list[str]:
        """Every chunk carries the whole tool calls (no index), as the IMS example server sends them."""
        if not self.calls:
            return [self._chunk({"content": piece}) for piece in text_pieces]
        pieces = text_pieces or ["", "", ""]
        return [self._chunk({"content": piece, "tool_calls": self.calls}) for piece in pieces]
