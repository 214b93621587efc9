"""End to end against a real signalwire-agents SDK agent served on loopback: the runtime's
webhook request is what the SDK's handler expects (auth, per-call token, argument form), and
the SDK's SwaigFunctionResult actions come back as typed actions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from signalwire_agents import AgentBase
from signalwire_agents.core.function_result import SwaigFunctionResult

from callgate.swaig.actions import Say, SetGlobalData, Swml
from callgate.swml.models import AI

from .conftest import closed_port, make_context, make_runtime


@contextmanager
def serve(app: Any, port: int) -> Iterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "SDK agent did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def sdk_agent(port: int) -> AgentBase:
    agent = AgentBase(
        name="sdk", route="/sdk", host="127.0.0.1", port=port, basic_auth=("sdkuser", "sdkpass")
    )
    agent.prompt_add_section("Role", body="You answer the weather.")

    def weather(args: dict[str, Any], raw: dict[str, Any]) -> SwaigFunctionResult:
        meta = raw.get("meta_data")
        return (
            SwaigFunctionResult(f"Sunny in {args.get('city')} for {raw.get('caller_id_num')} ({meta})")
            .say("One moment.")
            .update_global_data({"city": args.get("city")})
            .connect("+15550002222", final=True)
        )

    agent.define_tool(
        name="get_weather",
        description="Weather for a city",
        parameters={"city": {"type": "string", "description": "city"}},
        handler=weather,
    )
    return agent


async def test_runtime_calls_an_sdk_agent() -> None:
    port = closed_port()
    context = make_context(call_id="call-sdk-1")
    with serve(sdk_agent(port).get_app(), port) as base:
        async with httpx.AsyncClient(timeout=20) as http:
            fetched = await http.post(
                base + "/sdk/", json={"call_id": context.call_id}, auth=("sdkuser", "sdkpass")
            )
            assert fetched.status_code == 200
            verb = next(v for v in fetched.json()["sections"]["main"] if "ai" in v)
            ai = AI.model_validate(verb["ai"])
            ai.params.swaig_allow_private_urls = True
            runtime = make_runtime(ai, http, context=context, timeout=20)
            assert [t["function"]["name"] for t in runtime.tools()] == ["get_weather"]
            result = await runtime.call("get_weather", '{"city": "Oslo"}')
            # The same document used under another call_id: the SDK refuses the token.
            stranger = make_runtime(ai, http, context=make_context(call_id="someone-else"), timeout=20)
            refused = await stranger.call("get_weather", '{"city": "Oslo"}')
    assert result.error is None, result.response
    assert result.response == "Sunny in Oslo for +15551230000 ({})"
    assert result.actions == [
        Say("One moment."),
        SetGlobalData({"city": "Oslo"}),
        Swml(
            {"sections": {"main": [{"connect": {"to": "+15550002222"}}]}, "version": "1.0.0"}, transfer=True
        ),
    ]
    assert runtime.global_data == {"city": "Oslo"}
    assert "Oslo" not in refused.response
    dumped = str([entry.to_dict() for entry in runtime.swaig_log])
    assert "sdkpass" not in dumped
