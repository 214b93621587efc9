"""The warm transfer's summary: history filtering (as seed 001's TransferAgent), the model request,
and the fallback on timeout, error or an empty reply — against the scripted model server on loopback."""

from __future__ import annotations

from typing import Any

from callgate.control.warm.summary import (
    DEFAULT_SUMMARY_PROMPT,
    conversation_lines,
    fallback_summary,
    summarize,
)
from callgate.llm.client import OpenAIChatModel
from callgate.llm.types import ModelSettings
from callgate.scenario.model_server import ScriptedModelServer
from callgate.telephony.clock import VirtualClock, run_virtual

HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "You are Riley. SECRET-INSTRUCTION"},
    {"role": "assistant", "content": "Hi, this is Riley."},
    {"role": "user", "content": "My   internet\nis down."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "account 4711, SECRET-TOOL-RESULT"},
    {"role": "assistant", "content": "   "},
    {"role": "user", "content": ""},
    {
        "role": "assistant",
        "content": "Your line shows an outage.",
        "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "transfer", "arguments": "{}"}}],
    },
    {"role": "system", "content": "attention prompt"},
    {"role": "user", "content": "Get me a supervisor."},
]


def test_history_filtering_drops_instructions_function_calls_and_empty_messages() -> None:
    assert conversation_lines(HISTORY) == [
        "Assistant: Hi, this is Riley.",
        "Customer: My internet is down.",
        "Assistant: Your line shows an outage.",
        "Customer: Get me a supervisor.",
    ]


def test_history_filtering_survives_odd_messages() -> None:
    odd: list[dict[str, Any]] = [
        {},
        {"role": "user"},
        {"role": "user", "content": ["not", "text"]},
        {"role": 3},
    ]
    assert conversation_lines(odd) == []


def test_fallback_keeps_the_last_turns() -> None:
    lines = [f"Customer: line {n}" for n in range(10)]
    text = fallback_summary(lines, turns=3)
    assert text.endswith("Customer: line 7\nCustomer: line 8\nCustomer: line 9")
    assert "line 6" not in text
    assert "no conversation" in fallback_summary([])


def _run(scripts: dict[str, Any], timeout: float = 5.0) -> tuple[Any, ScriptedModelServer, float]:
    async def main(clock: VirtualClock) -> tuple[Any, ScriptedModelServer, float]:
        async with ScriptedModelServer(scripts) as server:
            model = OpenAIChatModel(server.base_url("summary"), "test-key", clock=clock, backoff=0.01)
            try:
                start = clock.monotonic()
                summary = await summarize(
                    model, ModelSettings(), HISTORY, clock=clock, prompt="Summarise, please.", timeout=timeout
                )
                return summary, server, clock.monotonic() - start
            finally:
                await model.aclose()

    return run_virtual(main)


def test_summary_from_the_model_sees_only_the_filtered_history() -> None:
    summary, server, _ = _run({"summary": [{"text": "Internet down; wants a supervisor."}]})
    assert (summary.text, summary.source) == ("Internet down; wants a supervisor.", "model")
    [request] = server.requests_of("summary")
    assert request.messages[0] == {"role": "system", "content": "Summarise, please."}
    sent = str(request.messages)
    assert "My internet is down." in sent and "Get me a supervisor." in sent
    for hidden in ("SECRET-INSTRUCTION", "SECRET-TOOL-RESULT", "lookup", "attention prompt"):
        assert hidden not in sent
    assert request.tools is None


def test_a_stalled_summary_times_out_on_the_clock_and_falls_back() -> None:
    summary, _, elapsed = _run({"summary": [{"stall": True}]}, timeout=4.0)
    assert summary.source == "fallback"
    assert summary.reason == "timeout after 4s"
    assert summary.text.endswith("Customer: Get me a supervisor.")
    assert 4.0 <= elapsed < 5.0


def test_an_empty_reply_falls_back() -> None:
    summary, _, _ = _run({})  # no script for the role: the server answers with empty text
    assert (summary.source, summary.reason) == ("fallback", "empty reply")


def test_a_model_error_falls_back() -> None:
    summary, _, _ = _run({"summary": [{"status": 400, "message": "bad request"}]})
    assert summary.source == "fallback"
    assert summary.reason.startswith("model error: http")


def test_default_prompt_is_used_without_one() -> None:
    async def main(clock: VirtualClock) -> list[dict[str, Any]]:
        async with ScriptedModelServer({"summary": [{"text": "ok"}]}) as server:
            model = OpenAIChatModel(server.base_url("summary"), "test-key", clock=clock)
            try:
                await summarize(model, ModelSettings(), HISTORY, clock=clock)
            finally:
                await model.aclose()
            return server.requests_of("summary")[0].messages

    messages = run_virtual(main)
    assert messages[0]["content"] == DEFAULT_SUMMARY_PROMPT


def test_an_unreachable_model_falls_back() -> None:
    async def main(clock: VirtualClock) -> Any:
        # A port nobody listens on (the server is stopped before the request).
        server = ScriptedModelServer({})
        await server.start()
        url = server.base_url("summary")
        await server.stop()
        model = OpenAIChatModel(url, "test-key", clock=clock, backoff=0.01)
        try:
            return await summarize(model, ModelSettings(), HISTORY, clock=clock, timeout=30)
        finally:
            await model.aclose()

    summary = run_virtual(main)
    assert summary.source == "fallback"
    assert summary.text.endswith("Customer: Get me a supervisor.")
