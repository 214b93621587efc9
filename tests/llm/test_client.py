"""OpenAIChatModel against the scripted model server: real OpenAI streaming over loopback HTTP."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from callgate.llm.client import OpenAIChatModel
from callgate.llm.types import (
    ModelSettings,
    StreamDone,
    TextDelta,
    ToolCall,
    ToolCallsReady,
    fallback_text,
)

from .conftest import ServeFn, collect

MakeClient = Callable[..., OpenAIChatModel]


def text_of(events: list[Any]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def calls_of(events: list[Any]) -> list[ToolCall]:
    ready = [event for event in events if isinstance(event, ToolCallsReady)]
    assert len(ready) <= 1, "ToolCallsReady must be emitted at most once"
    return ready[0].calls if ready else []


async def test_text_streams_word_by_word_then_done(serve: ServeFn, client_for: MakeClient) -> None:
    server = await serve({"agent": [{"text": "Hi, this is Frank. How can I help?"}]})
    events, error = await collect(client_for(server.base_url("agent")))
    assert error is None
    deltas = [event for event in events if isinstance(event, TextDelta)]
    assert len(deltas) == 8  # one per word
    assert text_of(events) == "Hi, this is Frank. How can I help?"
    done = events[-1]
    assert isinstance(done, StreamDone)
    assert done.finish_reason == "stop"
    assert done.output_tokens == 8  # usage was asked for and reported
    assert not calls_of(events)


async def test_chunk_size_controls_deltas(serve: ServeFn, client_for: MakeClient) -> None:
    server = await serve({"agent": [{"text": "abcdefgh", "chunk": 3}]})
    events, error = await collect(client_for(server.base_url("agent")))
    assert error is None
    assert [event.text for event in events if isinstance(event, TextDelta)] == ["abc", "def", "gh"]


async def test_request_carries_messages_tools_and_settings(serve: ServeFn, client_for: MakeClient) -> None:
    server = await serve({"agent": [{"text": "ok"}]})
    tools = [{"type": "function", "function": {"name": "hangup", "parameters": {"type": "object"}}}]
    settings = ModelSettings(
        model="my-model",
        temperature=0.3,
        top_p=0.9,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        max_tokens=50,
    )
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]
    _, error = await collect(client_for(server.base_url("agent")), messages, tools, settings)
    assert error is None
    (request,) = server.requests
    assert request.role == "agent"
    assert request.messages == messages
    assert request.tools == tools
    assert request.settings["model"] == "my-model"
    assert request.settings["temperature"] == 0.3
    assert request.settings["top_p"] == 0.9
    assert request.settings["presence_penalty"] == 0.1
    assert request.settings["frequency_penalty"] == 0.2
    assert request.settings["max_tokens"] == 50
    assert request.settings["stream"] is True
    assert request.settings["stream_options"] == {"include_usage": True}


async def test_unset_settings_are_not_sent(serve: ServeFn, client_for: MakeClient) -> None:
    server = await serve({"agent": [{"text": "ok"}]})
    await collect(client_for(server.base_url("agent")))
    settings = server.requests[0].settings
    assert "temperature" not in settings and "top_p" not in settings and "tools" not in settings


async def test_standard_tool_call_deltas_are_assembled(serve: ServeFn, client_for: MakeClient) -> None:
    arguments = {"destination": "sales", "note": "caller wants a quote for 12 units"}
    server = await serve({"agent": [{"tool_calls": [{"name": "transfer", "arguments": arguments}]}]})
    events, error = await collect(client_for(server.base_url("agent")))
    assert error is None
    (call,) = calls_of(events)
    assert call.name == "transfer"
    assert call.parsed_arguments() == arguments
    assert isinstance(events[-1], StreamDone) and events[-1].finish_reason == "tool_calls"
    assert text_of(events) == ""


async def test_repeated_style_tool_call_executes_once(serve: ServeFn, client_for: MakeClient) -> None:
    # As the IMS docs' example server: every chunk carries content AND the whole tool call.
    entry = {
        "text": "This is a simulated response.",
        "chunk": 1,
        "style": "repeated",
        "tool_calls": [{"name": "hangup", "arguments": "\\{\\}", "id": "call_abc123"}],
    }
    server = await serve({"agent": [entry]})
    events, error = await collect(client_for(server.base_url("agent")))
    assert error is None
    assert text_of(events) == "This is a simulated response."
    assert calls_of(events) == [ToolCall(id="call_abc123", name="hangup", arguments="{}")]


async def test_parallel_tool_calls(serve: ServeFn, client_for: MakeClient) -> None:
    calls = [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_weather", "arguments": {"city": "Tokyo, Japan"}},
        {"name": "get_time", "arguments": {}},
    ]
    for style in ("standard", "repeated"):
        server = await serve({"agent": [{"text": "Checking.", "tool_calls": calls, "style": style}]})
        events, error = await collect(client_for(server.base_url("agent")))
        assert error is None, style
        got = calls_of(events)
        assert [(c.name, c.parsed_arguments()) for c in got] == [(c["name"], c["arguments"]) for c in calls]
        assert len({c.id for c in got}) == 3


async def test_429_then_success_is_retried(serve: ServeFn, client_for: MakeClient) -> None:
    server = await serve({"agent": [{"status": 429}, {"text": "Back again."}]})
    events, error = await collect(client_for(server.base_url("agent")))
    assert error is None
    assert text_of(events) == "Back again."
    assert len(server.requests) == 2


async def test_500_exhausting_retries_raises_http_error(serve: ServeFn, client_for: MakeClient) -> None:
    server = await serve({"agent": [{"status": 500}, {"status": 503}, {"status": 500}, {"text": "late"}]})
    events, error = await collect(client_for(server.base_url("agent"), retries=2))
    assert events == []
    assert error is not None and error.kind == "http" and not error.produced_text
    assert "500" in error.message
    assert len(server.requests) == 3  # the first try and two retries; the 4th entry is never asked for


async def test_client_errors_are_not_retried(serve: ServeFn, client_for: MakeClient) -> None:
    server = await serve({"agent": [{"status": 401}, {"text": "never"}]})
    _, error = await collect(client_for(server.base_url("agent")))
    assert error is not None and error.kind == "http" and "401" in error.message
    assert len(server.requests) == 1


async def test_cut_stream_after_text_raises_cut_with_produced_text(
    serve: ServeFn, client_for: MakeClient
) -> None:
    server = await serve({"agent": [{"text": "Let me check that for you right away.", "cut_after": 12}]})
    events, error = await collect(client_for(server.base_url("agent")))
    assert text_of(events) == "Let me check"
    assert not any(isinstance(event, StreamDone) for event in events)
    assert error is not None
    assert error.kind == "cut" and error.produced_text
    assert len(server.requests) == 1  # never retried once words may have been spoken
    assert fallback_text(error)  # something is always said after a cut


async def test_cut_before_any_text_is_retried(serve: ServeFn, client_for: MakeClient) -> None:
    server = await serve({"agent": [{"text": "lost", "cut_after": 0}, {"text": "Second try."}]})
    events, error = await collect(client_for(server.base_url("agent")))
    assert error is None
    assert text_of(events) == "Second try."


async def test_stall_times_out(serve: ServeFn, client_for: MakeClient) -> None:
    server = await serve({"agent": [{"stall": True}]})
    model = client_for(server.base_url("agent"), first_token_timeout=0.5, chunk_timeout=0.5)
    events, error = await collect(model)
    assert events == []
    assert error is not None and error.kind == "timeout" and not error.produced_text
    assert len(server.requests) == 1  # timeouts are not retried


async def test_garbage_chunk_is_an_http_error(serve: ServeFn, client_for: MakeClient) -> None:
    server = await serve({"agent": [{"garbage": True, "text": "never heard"}]})
    events, error = await collect(client_for(server.base_url("agent")))
    assert text_of(events) == ""
    assert error is not None and error.kind == "http" and "not JSON" in error.message


async def test_unreachable_endpoint_is_an_http_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = OpenAIChatModel(f"http://127.0.0.1:{port}/v1", None, retries=1, backoff=0.01)
    try:
        events, error = await collect(model)
    finally:
        await model.aclose()
    assert events == []
    assert error is not None and error.kind == "http" and "cannot reach" in error.message


async def test_agent_past_its_script_is_a_recorded_failure(serve: ServeFn, client_for: MakeClient) -> None:
    server = await serve({"agent": [{"text": "only one"}]})
    model = client_for(server.base_url("agent"), retries=0)
    await collect(model)
    _, error = await collect(model)
    assert error is not None and error.kind == "http"
    assert server.failures == ["model request 2 of the caller's agent has no script entry"]


async def test_other_roles_past_their_script_get_an_empty_reply(
    serve: ServeFn, client_for: MakeClient
) -> None:
    server = await serve({"agent": [{"text": "hi"}]})
    events, error = await collect(client_for(server.base_url("summary")))
    assert error is None
    assert text_of(events) == "" and not calls_of(events)
    assert isinstance(events[-1], StreamDone)
    assert server.failures == []
    assert server.requests[0].role == "summary"


async def test_match_checks_the_newest_user_or_tool_message(serve: ServeFn, client_for: MakeClient) -> None:
    script = [{"match": "have to go", "text": "Bye."}, {"match": "sunny", "text": "x"}]
    server = await serve({"agent": script})
    model = client_for(server.base_url("agent"), retries=0)
    messages = [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "I have to go now"},
    ]
    events, error = await collect(model, messages)
    assert error is None and text_of(events) == "Bye."
    tool_messages = [*messages, {"role": "tool", "tool_call_id": "c1", "content": "It is raining."}]
    _, error = await collect(model, tool_messages)
    assert error is not None and error.kind == "http"
    assert len(server.failures) == 1
    assert "match /sunny/" in server.failures[0] and "It is raining." in server.failures[0]


async def test_server_rejecting_stream_options_is_asked_again_without(
    serve: ServeFn, client_for: MakeClient
) -> None:
    rejection = {"status": 400, "message": "Unrecognized request argument supplied: stream_options"}
    server = await serve({"agent": [rejection, {"text": "fine"}, {"text": "again"}]})
    model = client_for(server.base_url("agent"))
    events, error = await collect(model)
    assert error is None and text_of(events) == "fine"
    assert "stream_options" in server.requests[0].settings
    assert "stream_options" not in server.requests[1].settings
    await collect(model)  # remembered for later requests
    assert "stream_options" not in server.requests[2].settings


async def test_roles_have_separate_scripts(serve: ServeFn, client_for: MakeClient) -> None:
    server = await serve({"agent": [{"text": "agent says"}], "consult": [{"text": "consult says"}]})
    consult, _ = await collect(client_for(server.base_url("consult")))
    agent, _ = await collect(client_for(server.base_url("agent")))
    assert text_of(consult) == "consult says" and text_of(agent) == "agent says"
    assert [r.role for r in server.requests] == ["consult", "agent"]
    assert [r.number for r in server.requests_of("agent")] == [1]


async def test_works_with_an_httpx_client(serve: ServeFn, client_for: MakeClient) -> None:
    server = await serve({"agent": [{"text": "via httpx"}]})
    async with httpx.AsyncClient() as http_client:
        events, error = await collect(client_for(server.base_url("agent"), http_client=http_client))
    assert error is None and text_of(events) == "via httpx"


async def test_non_streaming_request_gets_a_whole_completion(serve: ServeFn) -> None:
    server = await serve({"agent": [{"text": "whole", "tool_calls": [{"name": "hangup"}]}]})
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            server.base_url("agent") + "/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": False},
        )
    body = response.json()
    message = body["choices"][0]["message"]
    assert message["content"] == "whole"
    assert message["tool_calls"][0]["function"] == {"name": "hangup", "arguments": "{}"}


@pytest.mark.parametrize(
    "body",
    [b"not json", json.dumps({"messages": "nope"}).encode(), json.dumps([1, 2]).encode()],
)
async def test_bad_requests_get_400(serve: ServeFn, body: bytes) -> None:
    server = await serve({"agent": [{"text": "x"}]})
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(server.base_url("agent") + "/chat/completions", content=body)
    assert response.status_code == 400
    assert "error" in response.json()
    assert server.requests == []


async def test_abandoning_a_stream_leaves_the_client_usable(serve: ServeFn, client_for: MakeClient) -> None:
    server = await serve({"agent": [{"text": "one two three four five"}, {"text": "next reply"}]})
    model = client_for(server.base_url("agent"))
    stream = model.stream([{"role": "user", "content": "hi"}], None, ModelSettings(model="m"))
    first = await anext(stream)
    assert first == TextDelta("one ")
    await stream.aclose()  # the caller barged in: the engine stops reading
    events, error = await collect(model)
    assert error is None and text_of(events) == "next reply"
