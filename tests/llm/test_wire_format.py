"""The scripted model server speaks OpenAI's real wire format: the official `openai` SDK, as a
customer's code would use it, reads its streams (text, tool calls in both delta styles, usage) and
its errors. callgate's own client talks the protocol over httpx; this keeps the test fake honest."""

from __future__ import annotations

import json

import openai
import pytest

from .conftest import ServeFn


async def _stream(
    base_url: str, **extra: object
) -> tuple[str, dict[int, dict[str, str]], str | None, object]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="test-key", max_retries=0, timeout=30)
    text = ""
    calls: dict[int, dict[str, str]] = {}
    finish: str | None = None
    usage: object = None
    try:
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hello"}], stream=True, **extra
        )
        async for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                text += choice.delta.content or ""
                for delta in choice.delta.tool_calls or []:
                    call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                    if delta.id:
                        call["id"] = delta.id
                    if delta.function is not None:
                        call["name"] = delta.function.name or call["name"]
                        call["arguments"] += delta.function.arguments or ""
    finally:
        await client.close()
    return text, calls, finish, usage


async def test_the_sdk_reads_a_text_stream_and_its_usage(serve: ServeFn) -> None:
    server = await serve({"agent": [{"text": "Hello there, how can I help?", "chunk": 4}]})
    text, calls, finish, usage = await _stream(
        server.base_url("agent"), stream_options={"include_usage": True}
    )
    assert text == "Hello there, how can I help?"
    assert calls == {}
    assert finish == "stop"
    assert usage is not None and getattr(usage, "completion_tokens", 0) > 0


async def test_the_sdk_assembles_standard_tool_call_deltas(serve: ServeFn) -> None:
    script = {"tool_calls": [{"name": "transfer", "arguments": {"dest": "sales"}}, {"name": "hangup"}]}
    server = await serve({"agent": [script]})
    text, calls, finish, _ = await _stream(server.base_url("agent"))
    assert text == ""
    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in sorted(calls)] == ["transfer", "hangup"]
    assert json.loads(calls[0]["arguments"]) == {"dest": "sales"}
    assert all(call["id"] for call in calls.values())


async def test_the_sdk_reads_an_http_error_as_the_vendor_sends_it(serve: ServeFn) -> None:
    server = await serve({"agent": [{"status": 429, "message": "slow down"}]})
    with pytest.raises(openai.RateLimitError, match="slow down"):
        await _stream(server.base_url("agent"))
