"""The consult agent on a sim supervisor leg, against the scripted model server on loopback:
its three tools, its turn-taking, and what happens on bad tool calls or a supervisor who leaves."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from callgate.channels.sim import SimCall
from callgate.control.warm.consult import ConsultVerdict
from callgate.llm.client import OpenAIChatModel
from callgate.llm.types import ModelSettings
from callgate.runtime.consult import CONSULT_TOOLS, ConsultAgent, ConsultRegistry, consult_instructions
from callgate.scenario.model_server import RecordedRequest, ScriptedModelServer
from callgate.telephony.clock import VirtualClock, run_virtual
from callgate.timeline import CallOutcome


@dataclass
class Briefing:
    verdict: ConsultVerdict
    requests: list[RecordedRequest]
    leg: SimCall
    outcome: CallOutcome


def brief(script: list[dict[str, Any]], supervisor: list[str | None]) -> Briefing:
    """Run one briefing; `supervisor` is what they say, one line each time the agent is idle (None:
    they hang up)."""

    async def main(clock: VirtualClock) -> Briefing:
        async with ScriptedModelServer({"consult": script}) as server:
            model = OpenAIChatModel(server.base_url("consult"), "test-key", clock=clock, backoff=0.01)
            outcome = CallOutcome()
            leg = SimCall(clock=clock, leg="sam", answered=True, timeline=outcome.timeline)
            registry = ConsultRegistry()
            agent = ConsultAgent(
                leg=leg,
                leg_name="sam",
                model=model,
                settings=ModelSettings(),
                instructions=consult_instructions(None, "Ann's internet is down."),
                clock=clock,
                outcome=outcome,
                started_at=clock.monotonic(),
            )
            registry.add(agent)
            run = asyncio.create_task(agent.run())

            async def speak() -> None:
                for line in supervisor:
                    await registry.wait_idle(leg.call_id)
                    if agent.finished:
                        return
                    if line is None:
                        await leg.remote_hangup()
                        return
                    await leg.caller_says(line)
                    for _ in range(10):  # let the agent take the line before asking again
                        await asyncio.sleep(0)

            talker = asyncio.create_task(speak())
            try:
                verdict = await asyncio.wait_for(run, 60)
            finally:
                talker.cancel()
                await asyncio.gather(talker, return_exceptions=True)
                await model.aclose()
            return Briefing(verdict, server.requests_of("consult"), leg, outcome)

    return run_virtual(main)


def test_first_request_has_the_summary_and_exactly_the_three_tools() -> None:
    result = brief(
        [
            {"text": "Hi Sam, Ann is on hold. Can you take her?"},
            {"match": "Sure", "tool_calls": [{"name": "connect_to_caller", "arguments": {}}]},
        ],
        ["Sure."],
    )
    assert result.verdict == ConsultVerdict("connect")
    first = result.requests[0]
    assert first.messages[0]["role"] == "system"
    assert "Ann's internet is down." in first.messages[0]["content"]
    assert len(first.messages) == 1  # made at once, before the supervisor says anything
    names = sorted(tool["function"]["name"] for tool in first.tools or [])
    assert names == ["connect_to_caller", "decline_transfer", "redirect_transfer"]
    assert first.tools == CONSULT_TOOLS
    # Its speech is on the supervisor's leg.
    assert [u.text for u in result.leg.utterances] == ["Hi Sam, Ann is on hold. Can you take her?"]
    assert {u.leg for u in result.leg.utterances} == {"sam"}


def test_each_supervisor_utterance_is_a_new_request_and_none_after_decline() -> None:
    result = brief(
        [
            {"text": "Hi Sam. Can you take a caller?"},
            {"match": "Who", "text": "Ann, about an outage."},
            {
                "match": "meeting",
                "tool_calls": [{"name": "decline_transfer", "arguments": {"reason": "in a meeting"}}],
            },
            {"text": "never requested"},
        ],
        ["Who is it?", "I'm in a meeting.", "Hello?"],
    )
    assert result.verdict == ConsultVerdict("decline", reason="in a meeting")
    assert len(result.requests) == 3
    assert result.requests[2].messages[-1] == {"role": "user", "content": "I'm in a meeting."}


def test_redirect_needs_a_destination() -> None:
    result = brief(
        [
            {"text": "Hi Sam."},
            {"match": "Alex", "tool_calls": [{"name": "redirect_transfer", "arguments": {}}]},
            {
                "match": "destination",
                "tool_calls": [{"name": "redirect_transfer", "arguments": {"destination": "+15550003333"}}],
            },
        ],
        ["Give it to Alex."],
    )
    assert result.verdict == ConsultVerdict("redirect", destination="+15550003333")
    # The bad call got an error as its tool result, and the model was asked again.
    assert "a destination" in result.requests[2].messages[-1]["content"]


def test_unknown_tools_and_garbage_arguments() -> None:
    result = brief(
        [
            {"text": "Hi Sam."},
            {"match": "No", "tool_calls": [{"name": "transfer_money", "arguments": {"amount": 10}}]},
            {"match": "unknown tool", "tool_calls": [{"name": "decline_transfer", "arguments": "not json"}]},
        ],
        ["No."],
    )
    assert result.verdict == ConsultVerdict("decline", reason="")
    assert "unknown tool 'transfer_money'" in result.requests[2].messages[-1]["content"]


def test_the_supervisor_hanging_up_ends_the_briefing() -> None:
    result = brief([{"text": "Hi Sam, can you take a caller?"}], [None])
    assert result.verdict == ConsultVerdict("hangup")
    assert len(result.requests) == 1


def test_a_failing_model_waits_for_the_supervisor_instead_of_speaking_nonsense() -> None:
    result = brief(
        [
            {"status": 400, "message": "broken"},
            {"match": "Hello", "tool_calls": [{"name": "connect_to_caller"}]},
        ],
        ["Hello?"],
    )
    assert result.verdict == ConsultVerdict("connect")
    assert result.leg.utterances == []
    assert result.outcome.timeline.of_kind("consult-model-error")
