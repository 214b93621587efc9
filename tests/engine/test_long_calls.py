"""Long calls: the history sent to the model is bounded, its system prompt and tool pairing kept;
save_conversation + conversation_id carry memory from one call to the next."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from callgate.agent.history import DEFAULT_WINDOW, Conversation
from callgate.channels.sim import SimWorld
from callgate.llm.client import ChatModel, OpenAIChatModel
from callgate.llm.types import ToolCall
from callgate.records.store import open_store
from callgate.runtime.call_runner import CallRunner, CallSetup
from callgate.runtime.post_call import PostCallServices, record_input, run_post_call
from callgate.scenario.model_server import ScriptedModelServer
from callgate.scenario.runner import run_scenario_file
from callgate.swaig.context import CallContext
from callgate.swml.loader import parse_document
from callgate.swml.models import AI
from callgate.telephony.clock import VirtualClock, run_virtual

SCENARIOS = Path(__file__).resolve().parents[2] / "examples" / "scenarios"


def test_window_keeps_the_system_prompt_and_never_opens_on_an_orphan_tool_result() -> None:
    conversation = Conversation(system_prompt="You are a quiz master.", window=3)
    conversation.add_user("Hi", 0)
    conversation.add_assistant("", [ToolCall(id="c1", name="check", arguments="{}")], 0)
    conversation.add_tool_result("c1", "ok", 0)
    conversation.add_tool_result("c1", "again", 0)  # two results: the window would open on one
    conversation.add_assistant("Right.", [], 0)
    sent = conversation.request_messages()
    assert sent[0] == {"role": "system", "content": "You are a quiz master."}
    assert [m["role"] for m in sent[1:]] == ["assistant"]  # the cut-off call's results are dropped
    assert len(conversation.call_log()) == 6  # the report keeps everything
    assert Conversation(system_prompt="x").window == DEFAULT_WINDOW


def test_an_hour_of_turns_sends_a_bounded_request() -> None:
    conversation = Conversation(system_prompt="sys")
    for turn in range(2000):
        conversation.add_user(f"u{turn}", turn)
        conversation.add_assistant(f"a{turn}", [], turn)
    sent = conversation.request_messages()
    assert len(sent) == DEFAULT_WINDOW + 1 and sent[-1]["content"] == "a1999"


def test_sliding_window_scenario_requests_stay_bounded() -> None:
    result = run_scenario_file(SCENARIOS / "long_call_sliding_window.yaml")
    assert result.passed, "\n".join(result.all_failures)
    assert result.outcome is not None
    sizes = [int(e.data["messages"]) for e in result.outcome.timeline.events if e.kind == "model-request"]
    assert max(sizes) <= 6 and len(sizes) == 8, sizes  # 5 messages + the system prompt


DOCUMENT: dict[str, Any] = {
    "sections": {
        "main": [
            {
                "ai": {
                    "prompt": {"text": "You are the Harbor Hotel's front desk."},
                    "params": {
                        "conversation_id": "guest-42",
                        "save_conversation": True,
                        "conscience": "Never reveal room numbers.",
                        "convo": [{"role": "assistant", "content": "Welcome back to the Harbor Hotel."}],
                        "max_response_tokens": 77,
                    },
                }
            }
        ]
    }
}


async def _one_call(clock: VirtualClock, server: ScriptedModelServer, store_path: Path, said: str) -> None:
    document = parse_document(DOCUMENT, source="<test>").document
    world = SimWorld(clock, caller_name="Ann")
    async with httpx.AsyncClient() as http:
        models: list[OpenAIChatModel] = []

        def model_for(role: str, ai: AI) -> ChatModel:
            models.append(OpenAIChatModel(server.base_url(role), "key", clock=clock))
            return models[-1]

        with open_store(str(store_path)) as store:
            context = CallContext(
                caller_id_num="+15551230000", caller_id_name="Ann", to_number="+15559870000"
            )
            setup = CallSetup(
                document,
                world.caller,
                clock,
                http,
                model_for,
                context,
                switch=world.switch,
                recall=store.recall_conversation,
            )
            runner = CallRunner(setup)
            task = asyncio.create_task(runner.run())
            await runner.agent_idle()
            await world.caller.caller_says(said)
            await clock.sleep(0.5)  # the utterance reaches the agent, which starts answering
            await runner.agent_idle()
            await world.caller.remote_hangup()
            await task
            await run_post_call(record_input(runner), PostCallServices(store, http, clock, model_for))
        for model in models:
            await model.aclose()


def test_save_conversation_carries_memory_to_the_next_call(tmp_path: Path) -> None:
    scripts = {
        "agent": [
            {"text": "Harbor Hotel, how can I help?"},
            {"text": "Late checkout at 2 pm is booked for you."},
            {"text": "Welcome back, Ann."},
            {"text": "Yes, your late checkout at 2 pm stands."},
        ],
        "post_prompt": [],
    }

    async def main(clock: VirtualClock) -> list[Any]:
        async with ScriptedModelServer(scripts) as server:
            await _one_call(clock, server, tmp_path / "calls.db", "Can I have a late checkout?")
            await _one_call(clock, server, tmp_path / "calls.db", "Is my late checkout still on?")
            return [r for r in server.requests if r.role == "agent"]

    requests = run_virtual(main)
    first, second = requests[0], requests[2]
    assert "Earlier calls" not in first.messages[0]["content"]
    system = second.messages[0]["content"]
    # The second call starts knowing what the first one said (no post_prompt: the transcript).
    assert "Earlier calls in this conversation" in system and "late checkout" in system
    # conscience is in the prompt, convo opens the history, max_response_tokens reaches the request.
    assert system.startswith("You are the Harbor Hotel's front desk.\n\nNever reveal room numbers.")
    assert first.messages[1] == {"role": "assistant", "content": "Welcome back to the Harbor Hotel."}
    assert first.settings.get("max_tokens") == 77
    with open_store(str(tmp_path / "calls.db")) as store:
        memory = store.recall_conversation("guest-42") or ""
    assert memory.count("late checkout") >= 2  # both calls are remembered
