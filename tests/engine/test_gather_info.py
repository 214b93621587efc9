"""The SDK's gather_info on callgate: what the model is told and offered for each question, that
gather_submit leaves no trace in its history, where the answers go and how the step goes on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callgate.agent.gather import CONFIRMATION_REQUIRED, MISSING_ANSWER
from callgate.agent.history import Conversation
from callgate.agent.steps import MoveBy, StepMachine
from callgate.llm.types import ToolCall
from callgate.swml.models import Prompt

from .recording import run_recording

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "examples" / "scenarios" / "gather_info_intake.yaml"


def _names(tools: list[dict[str, Any]] | None) -> list[str]:
    return [tool["function"]["name"] for tool in tools or []]


def test_each_question_is_asked_alone_with_only_gather_submit(monkeypatch: pytest.MonkeyPatch) -> None:
    result, requests = run_recording(monkeypatch, SCENARIO)
    first = requests[0]
    system = first.messages[0]["content"]
    assert "Welcome the caller to Harbor Clinic before the first question." in system
    assert 'Ask the user: "What is your full name?"' in system
    assert "You MUST confirm the answer with the user before submitting" in system
    assert "Collect the patient's details." not in system  # the step's own text waits for the end
    assert _names(first.tools) == ["gather_submit"]  # no next_step, no document function
    schema = first.tools[0]["function"]["parameters"]  # type: ignore[index]
    assert schema["required"] == ["answer", "confirmed_by_user"]
    assert schema["properties"]["confirmed_by_user"]["enum"] == ["true", "false"]

    # The unconfirmed submission is refused: the model is told so, and no tool message exists.
    retry = requests[2]
    assert "not accepted: it has not been confirmed" in retry.messages[0]["content"]
    assert all(m["role"] != "tool" for m in retry.messages)

    # The age question: its own instructions, an integer answer, verify_age offered for it alone.
    age = requests[4]
    assert 'Ask the user: "How old are you?"' in age.messages[0]["content"]
    assert "The answer must be a integer value." in age.messages[0]["content"]
    assert "Use verify_age if the age sounds unusual." in age.messages[0]["content"]
    assert _names(age.tools) == ["verify_age", "gather_submit"]
    assert age.tools[-1]["function"]["parameters"]["properties"]["answer"]["type"] == "integer"  # type: ignore[index]
    assert age.tools[-1]["function"]["parameters"]["required"] == ["answer"]  # type: ignore[index]

    # Completed: the review step, its text expanded with the gathered answers; no tool artifacts
    # of gather_submit anywhere in what the model sees (verify_age's pair stays: a real function).
    last = requests[-1]
    assert "## Current step: review" in last.messages[0]["content"]
    assert "Thank Ann Lee by name" in last.messages[0]["content"]
    assert "(A sore knee)" in last.messages[0]["content"]
    calls = [c["function"]["name"] for m in last.messages for c in m.get("tool_calls", [])]
    assert calls == ["verify_age"]
    assert _names(last.tools) == []  # review: functions none, end step

    assert result.outcome is not None
    kinds = [(e.kind, dict(e.data)) for e in result.outcome.timeline.events]
    gather = [
        (k, d.get("key") or d.get("step")) for k, d in kinds if k.startswith("gather-") or k == "step-change"
    ]
    assert gather == [
        ("gather-start", "intake"),
        ("gather-question", "full_name"),
        ("gather-reject", "full_name"),
        ("gather-answer", "full_name"),
        ("gather-question", "age"),
        ("gather-answer", "age"),
        ("gather-question", "reason"),
        ("gather-answer", "reason"),
        ("gather-complete", "intake"),
        ("step-change", "review"),
    ]
    change = next(d for k, d in kinds if k == "step-change")
    assert change["by"] == "gather_complete" and change["from_step"] == "intake"

    # The report: the answers in global_data, each gather_submit in the swaig log, none in call_log.
    report = next(x.json for x in result.outcome.http if x.url == "https://clinic.example.com/post")
    assert report["global_data"]["patient"] == {"full_name": "Ann Lee", "age": 42, "reason": "A sore knee"}
    logged = [(e["command_name"], e["post_response"]["response"]) for e in report["swaig_log"]]
    assert logged == [
        ("gather_submit", "Rejected: confirm the answer with the user before submitting it."),
        ("gather_submit", "Answer recorded."),
        ("verify_age", "An age of 42 is fine."),
        ("gather_submit", "Answer recorded."),
        ("gather_submit", "All questions are answered."),
    ]
    in_log = [c["function"]["name"] for m in report["call_log"] for c in m.get("tool_calls", [])]
    assert in_log == ["verify_age"]


CONTEXTS: dict[str, Any] = {
    "default": {
        "steps": [
            {
                "name": "intake",
                "text": "Route the ticket ${ticket.category}.",
                "valid_steps": ["billing"],
                "functions": ["lookup"],
                "gather_info": {
                    "output_key": "ticket",
                    "questions": [
                        {"key": "category", "question": "Billing or technical?"},
                        {"key": "urgent", "question": "Is it urgent?", "type": "boolean"},
                    ],
                },
            },
            {"name": "billing", "text": "Help with billing."},
        ]
    }
}


def _machine(contexts: dict[str, Any]) -> tuple[StepMachine, dict[str, Any]]:
    prompt = Prompt.model_validate({"contexts": contexts})
    assert prompt.contexts is not None
    data: dict[str, Any] = {}

    def render(text: str) -> str:
        category = data.get("ticket", {}).get("category", "")
        return text.replace("${ticket.category}", category)

    return StepMachine(prompt.contexts, render=render), data


def test_without_completion_action_the_step_goes_on_with_its_own_instructions() -> None:
    steps, data = _machine(CONTEXTS)
    assert steps.asking and not steps.allows_function("lookup")
    assert steps.next_step("billing").refused == "answer the open question with gather_submit first"
    assert steps.auto_advance() is None
    missing, move = steps.gather_submit({"answer": "  "})
    assert missing is not None and missing.rejected == MISSING_ANSWER and move is None
    assert "Your last gather_submit had no answer." in steps.prompt_section()
    first, _ = steps.gather_submit({"answer": "billing"})
    assert first is not None and steps.gathering is not None
    steps.gathering.store(data, first.key, first.answer)
    urgent, move = steps.gather_submit({"answer": "yes"})
    assert urgent is not None and urgent.answer is True and urgent.complete and move is None
    steps.gathering.store(data, urgent.key, urgent.answer)
    assert data == {"ticket": {"category": "billing", "urgent": True}}
    # Back in the step: its text (expanded with the answers), navigation and whitelist restored.
    assert not steps.asking
    section = steps.prompt_section()
    assert "Route the ticket billing." in section
    assert 'The information gathered in this step: {"category": "billing", "urgent": true}' in section
    assert [tool["function"]["name"] for tool in steps.tools()] == ["next_step"]
    assert steps.allows_function("lookup")
    assert steps.next_step("billing").ok
    assert steps.gather_submit({"answer": "late"}) == (None, None)  # nothing is open any more


def test_completion_action_naming_a_step_jumps_there_and_reentry_asks_again() -> None:
    contexts = {
        "default": {
            "steps": [
                {"name": "start", "text": "Hi.", "valid_steps": ["ask"]},
                {
                    "name": "ask",
                    "gather_info": {
                        "completion_action": "done",
                        "questions": [
                            {"key": "n", "question": "A number?", "type": "number", "confirm": True}
                        ],
                    },
                },
                {"name": "middle", "text": "Never shown."},
                {"name": "done", "text": "Done.", "valid_steps": ["ask"]},
            ]
        }
    }
    steps, _ = _machine(contexts)
    assert not steps.asking
    assert steps.next_step("ask").ok and steps.asking
    refused, _ = steps.gather_submit({"answer": "2.5", "confirmed_by_user": "false"})
    assert refused is not None and refused.rejected == CONFIRMATION_REQUIRED and refused.answer == 2.5
    taken, move = steps.gather_submit({"answer": "2.5", "confirmed_by_user": "true"})
    assert taken is not None and taken.attempt == 1 and taken.answer == 2.5
    assert move is not None and move.step == "done" and move.by is MoveBy.GATHER
    assert steps.step.name == "done" and steps.gathering is None
    assert steps.next_step("ask").ok and steps.asking  # entered again: asked again
    kinds = [kind for kind, _ in steps.events]
    assert kinds.count("gather-start") == 2 and "gather-complete" in kinds


def test_gather_submit_leaves_no_tool_call_in_the_history() -> None:
    conversation = Conversation(system_prompt="sys")
    conversation.add_user("Ann", 0)
    conversation.add_assistant("", [ToolCall(id="g1", name="gather_submit", arguments="{}")], 0)
    conversation.forget_tool_call("g1")
    assert conversation.messages == [{"role": "user", "content": "Ann"}]
    both = [
        ToolCall(id="v1", name="verify", arguments="{}"),
        ToolCall(id="g2", name="gather_submit", arguments="{}"),
    ]
    conversation.add_assistant("One moment.", both, 1)
    conversation.forget_tool_call("g2")
    assert [c["id"] for c in conversation.messages[-1]["tool_calls"]] == ["v1"]
    conversation.add_assistant("Noted.", [ToolCall(id="g3", name="gather_submit", arguments="{}")], 2)
    conversation.forget_tool_call("g3")
    assert conversation.messages[-1] == {"role": "assistant", "content": "Noted."}
    assert len(conversation.raw_log) == 4  # the raw log keeps everything
