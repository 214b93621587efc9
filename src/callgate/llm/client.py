"""Streaming chat completions from any OpenAI-compatible endpoint, with timeouts and careful retries.

The stream yields `TextDelta`s as they arrive, then `ToolCallsReady` (if the model called tools) and
`StreamDone`. Failures raise `ModelError` from the iterator:
- `timeout`: no first token within `first_token_timeout`, or a gap longer than `chunk_timeout`;
- `http`: an HTTP error (after retries), an error event or a chunk that is not JSON;
- `cut`: the connection broke, or the stream ended without a finish reason;
- `config`: the client could not be set up.
429, 5xx and connection failures are retried with back-off, but only while nothing has been yielded:
once a word may have been spoken, a retry would make the agent repeat itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Protocol, cast

import httpx
import openai

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


def _retry_after(error: openai.APIStatusError) -> float | None:
    value = error.response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), _MAX_RETRY_AFTER)
    except ValueError:
        return None


def _status_failure(error: openai.APIStatusError) -> _Failure:
    status = error.status_code
    retryable = status == 429 or status >= 500
    return _Failure(
        "http",
        f"HTTP {status}: {error.message}",
        retryable=retryable,
        retry_after=_retry_after(error) if retryable else None,
    )


class OpenAIChatModel:
    """A `ChatModel` for an OpenAI-compatible `/chat/completions` endpoint, via the openai SDK."""

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
        self._owns_client = http_client is None
        # Ask for usage in the stream until a server says it does not know `stream_options`.
        self._include_usage = True
        try:
            self._client = openai.AsyncOpenAI(
                base_url=base_url,
                # Local servers take no key, but the SDK insists on one.
                api_key=api_key or "no-key",
                max_retries=0,  # retries are ours: they must stop once a token was yielded
                # A backstop only: the per-chunk timeouts below are the ones that matter.
                timeout=max(first_token_timeout, chunk_timeout) * 3 + 5,
                # The SDK accepts httpx clients as well as httpx2 ones; its annotation names only the latter.
                http_client=cast(Any, http_client),
            )
        except openai.OpenAIError as exc:
            raise ModelError("config", f"cannot set up the model client: {exc}") from exc

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.close()

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

    async def _open(self, request: dict[str, Any], timeout: float) -> Any:
        """Send the request; returns the SDK's async stream once the response headers arrived."""
        create = self._client.chat.completions.create
        try:
            return await asyncio.wait_for(create(**request), timeout)
        except TimeoutError:
            raise _Failure("timeout", f"no response within {self.first_token_timeout:g} s") from None
        except openai.APIStatusError as exc:
            if exc.status_code in (400, 422) and "stream_options" in str(exc.message) and self._include_usage:
                # Older servers reject `stream_options`; ask again without it.
                self._include_usage = False
                raise _Failure("http", str(exc.message), retryable=True, retry_after=0.0) from exc
            raise _status_failure(exc) from exc
        except openai.APIConnectionError as exc:
            raise _Failure("http", f"cannot reach the model: {exc}", retryable=True) from exc
        except openai.OpenAIError as exc:
            raise _Failure("http", str(exc)) from exc

    async def _attempt(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, settings: ModelSettings
    ) -> AsyncGenerator[StreamEvent, None]:
        started = self._clock.monotonic()
        first_token_deadline = started + self.first_token_timeout
        stream = await self._open(self._request(messages, tools, settings), self.first_token_timeout)
        assembler = ToolCallAssembler()
        produced_text = False
        first_token_seconds: float | None = None
        finish_reason: str | None = None
        input_tokens = output_tokens = 0
        iterator = stream.__aiter__()
        try:
            while True:
                waiting_first = first_token_seconds is None
                if waiting_first:
                    timeout = max(0.0, first_token_deadline - self._clock.monotonic())
                else:
                    timeout = self.chunk_timeout
                try:
                    chunk = await asyncio.wait_for(iterator.__anext__(), timeout)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    what = "first token" if waiting_first else "next chunk"
                    limit = self.first_token_timeout if waiting_first else self.chunk_timeout
                    raise _Failure(
                        "timeout", f"no {what} within {limit:g} s", produced_text=produced_text
                    ) from None

                usage = getattr(chunk, "usage", None)
                if usage is not None:
                    input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
                    output_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
                for choice in getattr(chunk, "choices", None) or []:
                    if (getattr(choice, "index", 0) or 0) != 0:
                        continue  # only the first choice is spoken
                    delta = getattr(choice, "delta", None)
                    content = getattr(delta, "content", None) if delta is not None else None
                    tool_deltas = getattr(delta, "tool_calls", None) if delta is not None else None
                    if (content or tool_deltas) and first_token_seconds is None:
                        first_token_seconds = self._clock.monotonic() - started
                    if content:
                        produced_text = True
                        yield TextDelta(content)
                    assembler.feed(tool_deltas)
                    if getattr(choice, "finish_reason", None):
                        finish_reason = str(choice.finish_reason)
        except openai.APIConnectionError as exc:
            raise _Failure(
                "cut",
                f"the stream broke off: {exc.__cause__ or exc}",
                produced_text=produced_text,
                retryable=not produced_text,
            ) from exc
        except json.JSONDecodeError as exc:
            raise _Failure(
                "http", f"the stream sent a chunk that is not JSON: {exc.msg}", produced_text=produced_text
            ) from exc
        except openai.APIError as exc:
            message = f"the stream reported an error: {exc.message}"
            raise _Failure("http", message, produced_text=produced_text) from exc
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # A chunk of an unexpected shape: a broken server must end the turn, never crash the call.
            message = f"the stream sent an unreadable chunk: {type(exc).__name__}: {exc}"
            raise _Failure("http", message, produced_text=produced_text) from exc
        finally:
            with contextlib.suppress(Exception):
                await stream.close()

        if finish_reason is None:
            # Servers end every reply with a finish reason; without one the reply is incomplete.
            raise _Failure(
                "cut",
                "the stream ended without a finish reason",
                produced_text=produced_text,
                retryable=not produced_text,
            )
        calls = assembler.calls()
        if calls:
            yield ToolCallsReady(calls)
        yield StreamDone(
            finish_reason=finish_reason,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            first_token_seconds=first_token_seconds,
        )
