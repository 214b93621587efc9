"""Transfers end to end through the scenario runner with the real engine: nothing dialled on a
refusal, the assistant hand-off's carried history, and a real loopback routing server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from callgate.runtime.scenario_call import ScenarioCall, build_call_under_test
from callgate.scenario.runner import run_scenario_file

from .conftest import RoutingServer

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "examples" / "scenarios"


def test_injected_number_dials_nothing() -> None:
    result = run_scenario_file(SCENARIOS / "transfer_ims_injected_number.yaml")
    assert result.passed, result.all_failures
    assert result.outcome is not None
    kinds = [event.kind for event in result.outcome.timeline.events]
    assert "dial" not in kinds and "transfer-dial" not in kinds
    assert "transfer-refused" in kinds
    assert "+1 900" not in result.outcome.transcript()


def test_assistant_hand_off_keeps_the_conversation() -> None:
    calls: list[ScenarioCall] = []

    def factory(**kwargs: Any) -> ScenarioCall:
        call = build_call_under_test(**kwargs)
        calls.append(call)
        return call

    result = run_scenario_file(SCENARIOS / "transfer_dynamic_assistant.yaml", factory=factory)
    assert result.passed, result.all_failures
    runner = calls[0].runner
    assert runner is not None and runner.conversation is not None
    conversation = runner.conversation
    assert conversation.system_prompt.startswith("You are Bea from Acme billing.")
    contents = [m.get("content") for m in conversation.messages]
    assert "Hi, this is Frank at Acme. How can I help?" in contents  # the old agent's words
    assert "I have a question about my bill." in contents
    roles = [m["role"] for m in conversation.messages]
    # Frank's tool call is answered before Bea speaks: the history stays valid for the model.
    call_index = next(i for i, m in enumerate(conversation.messages) if m.get("tool_calls"))
    assert roles[call_index + 1] == "tool"
    assert conversation.messages[call_index + 1]["content"] == "The call was transferred."
    assert result.outcome is not None
    assert result.outcome.ended_reason == "assistant-ended-call"  # what ended the call later


def test_dynamic_transfer_against_a_real_routing_server(
    tmp_path: Path, routing_server: RoutingServer
) -> None:
    routing_server.reply_json(
        {"destination": {"type": "sip", "sipUri": "sip:desk@pbx.example.com"}, "message": "Connecting you."}
    )
    scenario = {
        "name": "dynamic transfer to a real routing server",
        "agent": {
            "sections": {
                "main": [
                    {
                        "ai": {
                            "prompt": {"text": "You are Frank."},
                            "SWAIG": {
                                "functions": [
                                    {
                                        "function": "xfer",
                                        "builtin": "transfer",
                                        "transfer": {
                                            "destinations": [],
                                            "destination_url": routing_server.url,
                                            "destination_auth_user": "acme",
                                            "destination_auth_password": "pw",
                                        },
                                    }
                                ]
                            },
                        }
                    }
                ]
            }
        },
        "call": {"from": "+15551230000", "to": "+15559870000"},
        "passthrough": [f"http://127.0.0.1:{routing_server.port}/*"],
        "llm": [
            {"text": "Hi, Frank here."},
            {"match": "person", "tool_calls": [{"name": "xfer", "arguments": {}}]},
        ],
        "legs": {"sip:desk@pbx.example.com": {"answer": True, "after": "1s"}},
        "turns": [{"user": "A person, please."}],
        "expect": {
            "said": ["Hi, Frank here.", "Connecting you."],
            "ended": "assistant-forwarded-call",
            "transfer": {"to": "sip:desk@pbx.example.com", "mode": "blind", "result": "completed"},
        },
    }
    path = tmp_path / "dynamic.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    result = run_scenario_file(path)
    assert result.passed, result.all_failures
    (request,) = routing_server.received
    message = request.json["message"]
    assert message["type"] == "transfer-destination-request"
    assert message["customer"]["number"] == "+15551230000"
    assert "User: A person, please." in message["artifact"]["transcript"]
    assert message["artifact"]["messagesOpenAIFormatted"][0]["role"] == "system"
    assert request.headers["authorization"].startswith("Basic ")
