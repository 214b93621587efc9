"""Streaming chat completions from any OpenAI-compatible endpoint, with timeouts and careful retries.

The stream yields `TextDelta`s as they arrive, then `ToolCallsReady` (if the model called tools) and
`StreamDone`. Failures raise `ModelError` from the iterator:
- `timeout`: no first token within `first_token_timeout`, or a gap longer than `chunk_timeout`;
- `http`: an HTTP error (after retries), an error event or a chunk that is not JSON;
- `cut`: the connection broke, or the stream ended without a finish reason;
- `config`: the client could not be set up.
429, 5xx and connection failures are retried with back-off, but only while nothing has been yielded:
once a word may have been spoken, a retry would make the agent repeat itself.

The protocol is spoken directly over httpx (JSON request, server-sent events back), not through the
openai SDK: on the hot path of every turn the SDK's request transform and per-chunk models cost more
CPU than the rest of the engine. One timer per stream (`_StreamDeadline`) keeps the timeouts; the
HTTP client is normally the process's shared one for the endpoint (`callgate.http_pool`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, Protocol

import httpx

from callgate.http_pool import model_http_client
from callgate.llm.assembler import ToolCallAssembler
from callgate.llm.types import (
    ModelError,
    ModelErrorKind,
    ModelSettings,
    StreamDone,
    StreamEvent,
    TextDelta,
    ToolCallsReady,
)
from callgate.telephony.clock import Clock, SystemClock

_MAX_RETRY_AFTER = 10.0
_MAX_ERROR_BODY = 64 * 1024
_SPENT = httpx.ByteStream(b"")


class ChatModel(Protocol):
    """What the conversation engine needs of a model: one streamed reply per call."""

    def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, settings: ModelSettings
    ) -> AsyncIterator[StreamEvent]: ...


class _Failure(Exception):
    """One attempt failed; `retryable` says whether another attempt may be made."""

    def __init__(
        self,
        kind: ModelErrorKind,
        message: str,
        *,
        produced_text: bool = False,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ModelErrorKind = kind
        self.message = message
        self.produced_text = produced_text
        self.retryable = retryable
        self.retry_after = retry_after


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), _MAX_RETRY_AFTER)
    except ValueError:
        return None


def _error_message(body: bytes, reason: str) -> str:
    """The message of an OpenAI-style error body (`{"error": {"message": …}}`), else the body's text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500] or reason
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str) and error:
        return error
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return text[:500] or reason


class _StreamDeadline:
    """The timeouts of one stream as a single timer: `expires` (loop time) moves forward as chunks
    arrive — a float store, no task or timer per chunk. When the timer fires early it re-arms itself
    for the new `expires`; when it fires late it cancels the reading task. It only ever cancels while
    the stream is waiting for the network (`waiting`), never while the consumer holds an event."""

    def __init__(self, expires: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self.expires = expires
        self.waiting = True
        self.fired = False
        self._handle: asyncio.TimerHandle | None = self._loop.call_at(expires, self._check)

    def move(self, expires: float) -> None:
        """A new expiry time; the timer is re-armed only if it is earlier than the armed one."""
        self.expires = expires
        if self._handle is not None and expires < self._handle.when():
            self._handle.cancel()
            self._handle = self._loop.call_at(expires, self._check)

    def pause(self) -> None:
        """An event goes to the consumer: its time is not the server's."""
        self.waiting = False

    def resume(self) -> None:
        self.waiting = True
        if self._handle is None and not self.fired:
            self._handle = self._loop.call_at(self.expires, self._check)

    def _check(self) -> None:
        self._handle = None
        if not self.waiting:
            return  # re-armed by resume()
        if self.expires - self._loop.time() > 0.0005:
            self._handle = self._loop.call_at(self.expires, self._check)
            return
        self.fired = True
        if self._task is not None:
            self._task.cancel()

    def ours(self) -> bool:
        """After a CancelledError: whether it came from this deadline alone (then it is a timeout)."""
        return self.fired and self._task is not None and self._task.uncancel() == 0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class OpenAIChatModel:
    """A `ChatModel` for an OpenAI-compatible `/chat/completions` endpoint, streamed over httpx."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        first_token_timeout: float = 10.0,
        chunk_timeout: float = 10.0,
        retries: int = 2,
        clock: Clock | None = None,
        http_client: httpx.AsyncClient | None = None,
        backoff: float = 0.5,
    ) -> None:
        self.base_url = base_url
        self.first_token_timeout = first_token_timeout
        self.chunk_timeout = chunk_timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self._clock: Clock = clock or SystemClock()
        # Ask for usage in the stream until a server says it does not know `stream_options`.
        self._include_usage = True
        try:
            self._url = httpx.URL(base_url.rstrip("/") + "/chat/completions")
            if self._url.scheme not in ("http", "https") or not self._url.host:
                raise ValueError("not an http(s) URL")
        except (httpx.InvalidURL, ValueError) as exc:
            raise ModelError("config", f"cannot set up the model client for {base_url!r}: {exc}") from exc
        self._headers = {"content-type": "application/json", "accept": "text/event-stream"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        # A backstop only: the stream's own deadline is the one that matters.
        backstop = max(first_token_timeout, chunk_timeout) * 3 + 5
        self._timeout = httpx.Timeout(backstop)
        self._owns_client = http_client is None
        self._client = http_client or model_http_client()

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The HTTP client the model talks through (the process's shared one, unless it owns one)."""
        return self._client

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, settings: ModelSettings
    ) -> AsyncIterator[StreamEvent]:
        attempt = 0
        while True:
            produced = False
            try:
                async with contextlib.aclosing(self._attempt(messages, tools, settings)) as events:
                    async for event in events:
                        produced = True
                        yield event
                return
            except _Failure as failure:
                if produced or failure.produced_text or not failure.retryable or attempt >= self.retries:
                    raise ModelError(
                        failure.kind, failure.message, produced_text=produced or failure.produced_text
                    ) from failure
                delay = self.backoff * (2**attempt)
                if failure.retry_after is not None:
                    delay = max(delay, failure.retry_after)
                attempt += 1
                await self._clock.sleep(delay)

    def _request(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, settings: ModelSettings
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": settings.model,
            "messages": messages,
            "stream": True,
            **settings.request_options(),
        }
        if tools:
            request["tools"] = tools
        if self._include_usage:
            request["stream_options"] = {"include_usage": True}
        return request

    async def _open(self, body: bytes) -> httpx.Response:
        """Send the request; returns the response once its headers arrived with a 2xx status."""
        request = self._client.build_request(
            "POST", self._url, content=body, headers=self._headers, timeout=self._timeout
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException:
            raise _Failure("timeout", f"no response within {self.first_token_timeout:g} s") from None
        except httpx.TransportError as exc:
            raise _Failure("http", f"cannot reach the model: {exc!r}", retryable=True) from exc
        except httpx.HTTPError as exc:
            raise _Failure("http", str(exc)) from exc
        if response.status_code < 400:
            return response
        try:
            body_read = await response.aread()
        except httpx.HTTPError:
            body_read = b""
        finally:
            await response.aclose()
            response.stream = _SPENT
        status = response.status_code
        message = _error_message(body_read[:_MAX_ERROR_BODY], response.reason_phrase)
        if status in (400, 422) and "stream_options" in message and self._include_usage:
            # Older servers reject `stream_options`; ask again without it.
            self._include_usage = False
            raise _Failure("http", message, retryable=True, retry_after=0.0)
        retryable = status == 429 or status >= 500
        raise _Failure(
            "http",
            f"HTTP {status}: {message}",
            retryable=retryable,
            retry_after=_retry_after(response.headers) if retryable else None,
        )

    async def _attempt(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, settings: ModelSettings
    ) -> AsyncGenerator[StreamEvent, None]:
        started = self._clock.monotonic()
        body = json.dumps(self._request(messages, tools, settings), ensure_ascii=False).encode()
        loop = asyncio.get_running_loop()
        deadline = _StreamDeadline(loop.time() + self.first_token_timeout)
        response: httpx.Response | None = None
        assembler = ToolCallAssembler()
        produced_text = False
        first_token_seconds: float | None = None
        finish_reason: str | None = None
        input_tokens = output_tokens = 0
        done = False
        try:
            try:
                response = await self._open(body)
            except asyncio.CancelledError:
                if deadline.ours():
                    raise _Failure("timeout", f"no response within {self.first_token_timeout:g} s") from None
                raise
            buffer = b""
            data: list[bytes] = []
            event_name = b""
            async for raw in response.aiter_bytes():
                if done:
                    continue  # after [DONE]: read the body to its end, so the connection is reused
                buffer += raw
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.endswith(b"\r"):
                        line = line[:-1]
                    if line:
                        if line.startswith(b"data:"):
                            data.append(line[6:] if line[5:6] == b" " else line[5:])
                        elif line.startswith(b"event:"):
                            event_name = line[6:].strip()
                        continue  # comments (`:`), `id:`, `retry:` are not ours
                    if not data:
                        continue
                    payload = data[0] if len(data) == 1 else b"\n".join(data)
                    data = []
                    if payload.strip() == b"[DONE]":
                        done = True
                        break
                    chunk = _parse_chunk(payload, event_name, produced_text)
                    event_name = b""
                    usage = chunk.get("usage")
                    if usage:
                        input_tokens = int(usage.get("prompt_tokens") or 0)
                        output_tokens = int(usage.get("completion_tokens") or 0)
                    for choice in chunk.get("choices") or ():
                        if choice.get("index") or 0:
                            continue  # only the first choice is spoken
                        delta = choice.get("delta") or {}
                        content = delta.get("content")
                        tool_deltas = delta.get("tool_calls")
                        if first_token_seconds is None:
                            if content or tool_deltas:
                                first_token_seconds = self._clock.monotonic() - started
                                deadline.move(loop.time() + self.chunk_timeout)
                        else:
                            deadline.expires = loop.time() + self.chunk_timeout
                        if tool_deltas:
                            assembler.feed(tool_deltas)
                        if choice.get("finish_reason"):
                            finish_reason = str(choice["finish_reason"])
                        if content:
                            produced_text = True
                            deadline.pause()
                            yield TextDelta(content)
                            deadline.resume()
            if data and not done:
                # The last event had no blank line after it: it still counts.
                payload = b"\n".join(data)
                if payload.strip() == b"[DONE]":
                    done = True
                else:
                    chunk = _parse_chunk(payload, event_name, produced_text)
                    for choice in chunk.get("choices") or ():
                        if not (choice.get("index") or 0) and choice.get("finish_reason"):
                            finish_reason = str(choice["finish_reason"])
        except asyncio.CancelledError:
            if not deadline.ours():
                raise
            if finish_reason is None or not done:
                waiting_first = first_token_seconds is None
                what = "first token" if waiting_first else "next chunk"
                limit = self.first_token_timeout if waiting_first else self.chunk_timeout
                raise _Failure(
                    "timeout", f"no {what} within {limit:g} s", produced_text=produced_text
                ) from None
            # [DONE] came but the body never ended: the reply is whole all the same.
        except httpx.TimeoutException:
            raise _Failure("timeout", "the stream stalled", produced_text=produced_text) from None
        except httpx.TransportError as exc:
            raise _Failure(
                "cut",
                f"the stream broke off: {exc!r}",
                produced_text=produced_text,
                retryable=not produced_text,
            ) from exc
        except httpx.HTTPError as exc:
            raise _Failure("http", f"the stream failed: {exc}", produced_text=produced_text) from exc
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # A chunk of an unexpected shape: a broken server must end the turn, never crash the call.
            message = f"the stream sent an unreadable chunk: {type(exc).__name__}: {exc}"
            raise _Failure("http", message, produced_text=produced_text) from exc
        finally:
            deadline.close()
            if response is not None:
                with contextlib.suppress(Exception):
                    await response.aclose()
                # httpx links a response and its stream both ways: unlinked, a finished response is
                # freed at once instead of waiting, with every turn's others, for the cyclic collector.
                response.stream = _SPENT

        if finish_reason is None:
            # Servers end every reply with a finish reason; without one the reply is incomplete.
            raise _Failure(
                "cut",
                "the stream ended without a finish reason",
                produced_text=produced_text,
                retryable=not produced_text,
            )
        calls = assembler.calls()
        if calls or assembler.nameless:
            yield ToolCallsReady(calls, nameless=assembler.nameless)
        yield StreamDone(
            finish_reason=finish_reason,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            first_token_seconds=first_token_seconds,
        )


def _parse_chunk(payload: bytes, event_name: bytes, produced_text: bool) -> Mapping[str, Any]:
    """One `data:` payload as a chunk; error events and non-JSON are failures of the stream."""
    try:
        chunk = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise _Failure(
            "http", f"the stream sent a chunk that is not JSON: {exc.msg}", produced_text=produced_text
        ) from exc
    if not isinstance(chunk, dict):
        raise _Failure("http", "the stream sent a chunk that is not an object", produced_text=produced_text)
    error = chunk.get("error")
    if error or event_name == b"error":
        if isinstance(error, dict):
            error = error.get("message") or error
        message = f"the stream reported an error: {error or payload.decode('utf-8', 'replace')[:300]}"
        raise _Failure("http", message, produced_text=produced_text)
    return chunk
