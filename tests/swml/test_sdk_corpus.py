"""Conformance corpus: every prefab and every skill of the installed signalwire-agents SDK renders a
document that callgate loads with no unknown-field warning and runs to its end on the sim channel.

The SDK is listed, not hard-coded: a skill or prefab added by a newer SDK must be given its
parameters below, or this test fails and says which one is missing.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import signalwire_agents.prefabs as prefabs
from signalwire_agents import AgentBase
from signalwire_agents.skills.registry import skill_registry

from callgate.scenario.runner import run_scenario_file
from callgate.swml import load_text

BASE = "https://agent.example.com"

# Parameters each skill needs to render (dummy keys: nothing is ever sent to those services).
SKILL_PARAMS: dict[str, dict[str, Any]] = {
    "web_search": {"api_key": "k", "search_engine_id": "cx"},
    "datasphere": {"space_name": "s", "project_id": "p", "token": "t", "document_id": "d"},
    "datasphere_serverless": {"space_name": "s", "project_id": "p", "token": "t", "document_id": "d"},
    "google_maps": {"api_key": "k"},
    "math": {},
    "api_ninjas_trivia": {"api_key": "k"},
    "mcp_gateway": {"gateway_url": "@server", "auth_token": "t", "services": [{"name": "todo"}]},
    "wikipedia_search": {},
    "spider": {},
    "swml_transfer": {
        "transfers": {"/sales/i": {"url": "https://sales.example.com/swml", "message": "Transferring you."}}
    },
    "datetime": {},
    "play_background_file": {
        "files": [{"key": "hold", "description": "hold music", "url": "https://cdn.example.com/m.mp3"}]
    },
    "claude_skills": {"skills_path": "."},
    "native_vector_search": {"remote_url": "@server", "index_name": "docs"},
    "weather_api": {"api_key": "k"},
    "joke": {"api_key": "k"},
    "info_gatherer": {"questions": [{"key_name": "name", "question_text": "What is your name?"}]},
}

PREFABS: dict[str, Callable[[], AgentBase]] = {
    "ConciergeAgent": lambda: prefabs.ConciergeAgent(
        venue_name="Harbor Hotel",
        services=["room service", "spa"],
        amenities={"pool": {"hours": "7am-10pm", "location": "2nd floor"}},
    ),
    "FAQBotAgent": lambda: prefabs.FAQBotAgent(
        faqs=[{"question": "When are you open?", "answer": "9 to 5."}]
    ),
    "InfoGathererAgent": lambda: prefabs.InfoGathererAgent(
        questions=[{"key_name": "name", "question_text": "What is your name?"}]
    ),
    "ReceptionistAgent": lambda: prefabs.ReceptionistAgent(
        departments=[{"name": "sales", "description": "Sales", "number": "+15551230001"}]
    ),
    "SurveyAgent": lambda: prefabs.SurveyAgent(
        survey_name="Satisfaction",
        questions=[{"id": "q1", "text": "How was your stay?", "type": "open_ended"}],
    ),
}


# What the two skills that contact their service while being set up (an MCP gateway, a remote
# search server) are answered by a real HTTP server on loopback.
SERVICE_ANSWERS: dict[str, Any] = {
    "/health": {"status": "ok"},
    "/services/todo/tools": {
        "tools": [
            {
                "name": "list",
                "description": "List the to-do items",
                "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}},
            }
        ]
    },
}


class _ServiceHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        answer = SERVICE_ANSWERS.get(self.path.split("?")[0])
        body = json.dumps(answer if answer is not None else {"error": "not found"}).encode()
        self.send_response(200 if answer is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def service_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ServiceHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _skill_agent(name: str, service: str) -> AgentBase:
    agent = AgentBase(name=f"skill-{name}", route="/agent")
    agent.prompt_add_section("Role", body="You are a helpful assistant.")
    params = {key: service if value == "@server" else value for key, value in SKILL_PARAMS[name].items()}
    agent.add_skill(name, params)
    return agent


def _render(agent: AgentBase) -> dict[str, Any]:
    agent.manual_set_proxy_url(BASE)
    document: dict[str, Any] = json.loads(agent._render_swml(call_id="corpus-call"))
    return document


def _skill_names() -> list[str]:
    logging.getLogger("signalwire_agents").setLevel(logging.ERROR)
    return sorted(skill["name"] for skill in skill_registry.list_skills())


def test_every_installed_skill_and_prefab_is_covered() -> None:
    assert set(_skill_names()) <= set(SKILL_PARAMS), set(_skill_names()) - set(SKILL_PARAMS)
    found = {name for name in dir(prefabs) if name.endswith("Agent") and name != "AgentBase"}
    assert found <= set(PREFABS), found - set(PREFABS)


def _check_and_run(document: dict[str, Any], tmp_path: Path) -> None:
    loaded = load_text(json.dumps(document, indent=1), source="sdk.json")
    unknown = [w for w in loaded.warnings if "unknown" in w.message]
    assert unknown == [], [f"{w.path}: {w.message}" for w in unknown]
    ai = loaded.document.find_ai()
    assert ai is not None
    functions = [f.function for f in ai.SWAIG.functions if f.function not in ("startup_hook", "hangup_hook")]
    llm: list[dict[str, Any]] = [{"text": "Hello, how can I help?"}]
    if functions:
        # The model calls the document's first function once; every request it makes is stubbed.
        llm.append({"tool_calls": [{"name": functions[0], "arguments": {}}]})
    llm += [{"text": "Thanks for calling. Goodbye!"}] * 3
    scenario = {
        "name": "SDK corpus document",
        "agent": document,
        "llm": llm,
        "http": [{"method": "*", "url": "*", "json": {"response": "ok"}}],
        "turns": [{"user": "Hi, can you help me?"}, {"user": "That is all."}, "hangup"],
        "expect": {"said": ["Hello, how can I help?"]},
    }
    path = tmp_path / "corpus.yaml"
    path.write_text(json.dumps(scenario), encoding="utf-8")
    result = run_scenario_file(path)
    timeline = result.outcome.timeline.render() if result.outcome else ""
    assert result.passed, "\n".join(result.all_failures) + "\n" + timeline


@pytest.mark.parametrize("name", sorted(SKILL_PARAMS))
def test_skill_document_loads_cleanly_and_runs(
    name: str, tmp_path: Path, service_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if name not in _skill_names():
        pytest.skip(f"the installed SDK has no skill {name!r}")
    monkeypatch.setenv("SWML_ALLOW_PRIVATE_URLS", "true")  # the SDK's own guard, for the loopback service
    _check_and_run(_render(_skill_agent(name, service_url)), tmp_path)


@pytest.mark.parametrize("name", sorted(PREFABS))
def test_prefab_document_loads_cleanly_and_runs(name: str, tmp_path: Path) -> None:
    _check_and_run(_render(PREFABS[name]()), tmp_path)


def _gather_agent() -> AgentBase:
    """The SDK's gather info mode, as its documentation's intake example builds it."""
    agent = AgentBase(name="intake-agent", route="/intake")
    agent.prompt_add_section("Role", "You collect patient intake information.")
    ctx = agent.define_contexts().add_context("default")
    intake = ctx.add_step("intake").set_text("Collect patient information.")
    intake.set_gather_info(output_key="patient_info", completion_action="next_step", prompt="Be friendly.")
    intake.add_gather_question("full_name", "What is your full name?", confirm=True)
    intake.add_gather_question("visits", "How many visits this year?", type="integer")
    ctx.add_step("review").set_text("Thank ${patient_info.full_name} and say goodbye.").set_end(True)
    return agent


def test_sdk_gather_info_agent_runs_with_the_same_questions(tmp_path: Path) -> None:
    """gather_info renders into SWML that callgate honours: no warning, the questions asked through
    gather_submit one at a time, the answers in global_data, then the next step."""
    document = _render(_gather_agent())
    loaded = load_text(json.dumps(document, indent=1), source="sdk.json")
    assert [f"{w.path}: {w.message}" for w in loaded.warnings] == []
    scenario = {
        "name": "SDK gather_info agent",
        "agent": document,
        "llm": [
            {"text": "Welcome! What is your full name?"},
            {"match": "Ann Lee", "text": "Ann Lee, is that right?"},
            {
                "match": "Yes",
                "tool_calls": [
                    {"name": "gather_submit", "arguments": {"answer": "Ann Lee", "confirmed_by_user": "true"}}
                ],
            },
            {"match": "Yes", "text": "How many visits this year?"},
            {"match": "Two", "tool_calls": [{"name": "gather_submit", "arguments": {"answer": 2}}]},
            {"match": "Two", "text": "Thank you Ann Lee. Goodbye!"},
        ],
        "http": [{"method": "*", "url": "*", "json": {"response": "ok"}}],
        "turns": [{"user": "Ann Lee."}, {"user": "Yes."}, {"user": "Two."}],
        "expect": {
            "said": ["What is your full name?", "How many visits this year?", "Goodbye!"],
            "ended": "assistant-ended-call",
            "functions": [
                {"name": "gather_submit", "arguments": {"answer": "Ann Lee", "confirmed_by_user": "true"}},
                {"name": "gather_submit", "arguments": {"answer": 2}},
            ],
        },
    }
    path = tmp_path / "gather.yaml"
    path.write_text(json.dumps(scenario), encoding="utf-8")
    result = run_scenario_file(path)
    timeline = result.outcome.timeline.render() if result.outcome else ""
    assert result.passed, "\n".join(result.all_failures) + "\n" + timeline
    assert result.outcome is not None
    complete = [e.data for e in result.outcome.timeline.events if e.kind == "gather-complete"]
    assert complete == [
        {
            "context": "default",
            "step": "intake",
            "answered": 2,
            "output_key": "patient_info",
            "completion_action": "next_step",
        }
    ]
