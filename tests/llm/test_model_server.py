"""The scripted model server itself: script validation, the wire format, failure modes, virtual time."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from callgate.llm.client import OpenAIChatModel
from callgate.llm.types import ModelError, ModelSettings, TextDelta
from callgate.scenario.model_server import SHARED, ScriptedModelServer, ScriptEntry
from callgate.telephony.clock import VirtualClock, run_virtual

from .conftest import ServeFn, collect


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ({"match": "(unclosed"}, "invalid regular expression"),
        ({"tool_call": [{"name": "x"}]}, "tool_call"),
        ({"status": 500, "stall": True}, "at most one"),
        ({"cut_after": 3, "garbage": True}, "at most one"),
        ({"status": 200}, "status"),
        ({"chunk": 0}, "chunk"),
        ({"message": "nope"}, "needs status"),
        ({"style": "sideways"}, "style"),
        ({"tool_calls": [{"arguments": {}}]}, "name"),
    ],
)
def test_bad_script_entries_are_rejected(entry: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ScriptEntry.model_validate(entry)
    assert complaint in str(caught.value)


def test_script_entry_accepts_yaml_scalars_and_raw_arguments() -> None:
    entry = ScriptEntry.model_validate({"text": 42, "tool_calls": [{"name": "f", "arguments": "{bad"}]})
    assert entry.text == "42"
    assert entry.tool_calls[0].arguments_json() == "{bad"
    assert ScriptEntry.model_validate({"tool_calls": [{"name": "f"}]}).tool_calls[0].arguments_json() == "{}"


def test_base_url_needs_a_running_server() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        ScriptedModelServer({}).base_url("agent")


async def sse_chunks(url: str, body: dict[str, Any]) -> list[Any]:
    """The data lines of one streamed response, JSON-decoded ([DONE] kept as a string)."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(url + "/chat/completions", json=body)
    lines = [line[len("data: ") :] for line in response.text.split("\n\n") if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


async def test_repeated_style_looks_like_the_ims_example_server(serve: ServeFn) -> None:
    server = await serve(
        {"agent": [{"text": "Bye", "chunk": 1, "style": "repeated", "tool_calls": [{"name": "hangup"}]}]}
    )
    chunks = await sse_chunks(server.base_url("agent"), {"model": "m", "messages": [], "stream": True})
    assert chunks[-1] == "[DONE]"
    body = [c for c in chunks[1:-1] if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert [c["choices"][0]["delta"]["content"] for c in body] == ["B", "y", "e"]
    for chunk in body:
        (call,) = chunk["choices"][0]["delta"]["tool_calls"]
        assert "index" not in call
        assert call["function"] == {"name": "hangup", "arguments": "{}"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks[:-1])


async def test_usage_only_when_asked(serve: ServeFn) -> None:
    server = await serve({"agent": [{"text": "one two"}, {"text": "three"}]})
    url = server.base_url("agent")
    plain = await sse_chunks(url, {"model": "m", "messages": [], "stream": True})
    assert not any(isinstance(c, dict) and "usage" in c for c in plain)
    body = {"model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True}}
    with_usage = await sse_chunks(url, body)
    assert with_usage[-2]["choices"] == [] and with_usage[-2]["usage"]["completion_tokens"] == 1


async def test_stall_after_text_is_a_timeout_after_produced_text(serve: ServeFn) -> None:
    server = await serve({"agent": [{"text": "One moment please, checking.", "stall_after": 4}]})
    model = OpenAIChatModel(server.base_url("agent"), None, chunk_timeout=0.5, first_token_timeout=5)
    try:
        events, error = await collect(model)
    finally:
        await model.aclose()
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "One "
    assert error is not None and error.kind == "timeout" and error.produced_text


def test_timeouts_and_back_off_run_on_virtual_time() -> None:
    async def scenario(clock: VirtualClock) -> tuple[list[str], float]:
        script = [{"stall": True}, {"status": 503}, {"status": 503}, {"text": "made it"}]
        async with ScriptedModelServer({"agent": script}) as server:
            model = OpenAIChatModel(
                server.base_url("agent"), None, first_token_timeout=30, backoff=5, clock=clock
            )
            outcomes: list[str] = []
            start = clock.monotonic()
            for _ in range(2):
                try:
                    events = [e async for e in model.stream([], None, ModelSettings())]
                    outcomes.append("".join(e.text for e in events if isinstance(e, TextDelta)))
                except ModelError as error:
                    outcomes.append(error.kind)
            await model.aclose()
            return outcomes, clock.monotonic() - start

    outcomes, elapsed = run_virtual(scenario)
    assert outcomes == ["timeout", "made it"]
    # 30 s first-token timeout, then back-off 5 s and 10 s: all virtual.
    assert elapsed >= 45


async def test_one_shared_base_url_is_sorted_into_roles_by_the_request() -> None:
    def role(messages: list[dict[str, Any]], tools: Any) -> str:
        return "consult" if tools else "agent"

    scripts = {"agent": [{"text": "to the caller"}], "consult": [{"text": "to the supervisor"}]}
    async with ScriptedModelServer(scripts, classify=role) as server:
        url = server.base_url(SHARED)
        tool = {"type": "function", "function": {"name": "connect_to_caller", "parameters": {}}}
        consult = await sse_chunks(url, {"messages": [{"role": "user", "content": "hi"}], "tools": [tool]})
        agent = await sse_chunks(url, {"messages": [{"role": "user", "content": "hi"}]})
    said = ["".join(c["choices"][0]["delta"].get("content") or "" for c in r[:-1]) for r in (consult, agent)]
    assert said == ["to the supervisor", "to the caller"]
    assert [(r.role, r.number) for r in server.requests] == [("consult", 1), ("agent", 1)]
