"""End to end through `callgate test`'s runner with the real engine hook (no test doubles).

These check the runner's real wiring: the engine built by `build_call_under_test`, the scripted model
server, stubbed and passthrough HTTP (to a webhook server this test starts on loopback), and an
`agent:` fetched by URL.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from rich.console import Console

from callgate.scenario.command import run_tests
from callgate.scenario.runner import run_scenario_file

FRANK = {
    "version": "1.0.0",
    "sections": {"main": [{"ai": {"prompt": {"text": "You are Frank, a friendly support agent."}}}]},
}


def write(folder: Path, name: str, data: dict[str, Any]) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_ims_hangup_scenario_passes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "goodbye.yaml",
        {
            "name": "caller says goodbye",
            "agent": FRANK,
            "llm": [
                {"text": "Hi, this is Frank. How can I help?"},
                {"match": "have to go", "text": 'Sure. <imsagent_hangup endword="Goodbye!"/>', "chunk": 3},
            ],
            "turns": [{"user": "I have to go"}, "hangup"],
            "expect": {
                "said": ["Hi, this is Frank", "Goodbye!"],
                "never_said": ["imsagent", "<"],
                "ended": "assistant-ended-call",
                "last_said": "Goodbye!",
            },
        },
    )
    result = run_scenario_file(path)
    assert result.error is None, result.error
    assert result.failures == []
    assert result.outcome is not None
    # The caller's hang-up turn came after the call had ended: skipped, and noted.
    assert [e.data["turn"] for e in result.outcome.timeline.of_kind("turn-skipped")] == ["hangup"]


def test_failing_scenario_reports_the_mismatch_and_the_timeline(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "mismatch.yaml",
        {
            "agent": FRANK,
            "llm": [{"text": "Hello!"}, {"match": "refund", "text": "Sure."}],
            "turns": [{"user": "I want to cancel"}],
            "max_duration": "20s",
            "expect": {"ended": "assistant-ended-call"},
        },
    )
    buffer = io.StringIO()
    code = run_tests([path], json_output=False, console=Console(file=buffer, width=200, color_system=None))
    text = buffer.getvalue()
    assert code == 1
    assert "match /refund/ failed on the newest message 'I want to cancel'" in text
    assert "ended: expected assistant-ended-call, got customer-ended-call" in text
    assert "caller-says" in text  # the timeline is printed for the failure
    assert text.splitlines()[-1] == "0 passed, 1 failed"


# ---------------------------------------------------------------- real HTTP on loopback


class _Hooks(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    agent: ClassVar[dict[str, Any]] = {}

    def _send(self, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(_Hooks.agent)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        payload = json.loads(self.rfile.read(length) or b"{}")
        if self.path.startswith("/agent"):
            # SignalWire fetches documents by POST with the call's details.
            self._send(_Hooks.agent)
            return
        _Hooks.received.append(payload)
        self._send({"response": "Order 42 is cancelled.", "action": [{"say": "Your order is cancelled."}]})

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hooks() -> Iterator[str]:
    _Hooks.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _cancel_agent(hook_url: str) -> dict[str, Any]:
    function = {
        "function": "cancel_order",
        "description": "Cancel an order",
        "parameters": {"type": "object", "properties": {"order": {"type": "string"}}},
        "web_hook_url": f"{hook_url}/swaig",
    }
    ai = {"prompt": {"text": "You cancel orders."}, "SWAIG": {"functions": [function]}}
    return {"version": "1.0.0", "sections": {"main": [{"ai": ai}]}}


def _cancel_scenario(agent: str | dict[str, Any], hooks: str) -> dict[str, Any]:
    return {
        "agent": agent,
        "llm": [
            {"text": "Orders desk."},
            {"tool_calls": [{"name": "cancel_order", "arguments": {"order": "42"}}]},
            {"text": 'Done. <imsagent_hangup endword="Bye!"/>'},
        ],
        "passthrough": [f"{hooks}/*"],
        "turns": [{"user": "Cancel order 42"}],
        "expect": {
            "said": ["Orders desk.", "Your order is cancelled.", "Bye!"],
            "functions": [{"name": "cancel_order", "arguments": {"order": "42"}}],
            "http": [{"method": "POST", "url": f"{hooks}/swaig", "json": {"function": "cancel_order"}}],
            "ended": "assistant-ended-call",
        },
    }


def test_passthrough_webhook_really_goes_out(tmp_path: Path, hooks: str) -> None:
    agent = _cancel_agent(hooks)
    agent["sections"]["main"][0]["ai"]["params"] = {"swaig_allow_private_urls": True}
    path = write(tmp_path, "cancel.yaml", _cancel_scenario(agent, hooks))
    result = run_scenario_file(path)
    assert result.error is None, result.error
    assert result.failures == []
    assert [r.get("function") for r in _Hooks.received] == ["cancel_order"]
    assert result.outcome is not None
    assert [h.stubbed for h in result.outcome.http] == [False]


def test_passthrough_is_exempt_from_the_private_address_guard(tmp_path: Path, hooks: str) -> None:
    path = write(tmp_path, "cancel.yaml", _cancel_scenario(_cancel_agent(hooks), hooks))
    result = run_scenario_file(path)
    assert result.failures == []


def test_agent_fetched_by_url_goes_to_the_real_server(tmp_path: Path, hooks: str) -> None:
    _Hooks.agent = FRANK
    scenario = {
        "agent": f"{hooks}/agent",
        "llm": [{"text": "Hi, this is Frank."}],
        "turns": ["hangup"],
        "strict_http": True,
        "expect": {"said": ["Hi, this is Frank."], "ended": "customer-ended-call"},
    }
    result = run_scenario_file(write(tmp_path, "by_url.yaml", scenario))
    assert result.error is None, result.error
    assert result.failures == []
    assert result.outcome is not None
    assert [(h.url, h.stubbed, h.status) for h in result.outcome.http] == [(f"{hooks}/agent", False, 200)]
