"""The Vapi transfer-destination-request client: payload per Vapi's schema, answers, failures —
against a real routing server on loopback."""

from __future__ import annotations

import base64
import socket
from typing import Any

import httpx
import pytest

from callgate.agent.decisions import DynamicTarget
from callgate.control.destinations import (
    CallFacts,
    DestinationClient,
    Resolved,
    artifact_messages,
    build_request,
    parse_answer,
)

from .conftest import Reply, RoutingServer

STARTED = 1_795_359_845.0  # 2026-11-22 15:04:05 UTC
FACTS = CallFacts(
    call_id="call-1",
    from_number="+15551230000",
    to_number="+15559870000",
    caller_name="Ann",
    started_epoch=STARTED,
    now_epoch=STARTED + 12.5,
)
MESSAGES: tuple[dict[str, Any], ...] = (
    {"role": "system", "content": "You are Frank."},
    {"role": "assistant", "content": "Hi, this is Frank."},
    {"role": "user", "content": "A person, please."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "xfer", "arguments": "{}"}}],
    },
)
LOG = tuple({**m, "timestamp": t} for m, t in zip(MESSAGES[1:], (0.0, 4.0, 4.5), strict=True))


def target(url: str, **overrides: Any) -> DynamicTarget:
    values: dict[str, Any] = {
        "url": url,
        "assistant_name": "Acme Frank",
        "messages": MESSAGES,
        "log": LOG,
        "timeout": 5.0,
    }
    values.update(overrides)
    return DynamicTarget(**values)


def test_request_follows_vapis_schema() -> None:
    body = build_request(target("https://routing.example.com/t"), FACTS)
    message = body["message"]
    assert message["type"] == "transfer-destination-request"
    assert message["timestamp"] == 1_795_359_857_500  # epoch milliseconds, an integer
    assert isinstance(message["timestamp"], int)
    assert message["customer"] == {"number": "+15551230000", "name": "Ann"}
    assert message["phoneNumber"] == {"number": "+15559870000"}
    assert message["assistant"] == {"name": "Acme Frank"}
    assert message["call"]["id"] == "call-1"
    assert message["call"]["createdAt"] == "2026-11-22T15:04:05.000Z"
    artifact = message["artifact"]
    assert artifact["messagesOpenAIFormatted"] == list(MESSAGES)
    assert artifact["transcript"] == "AI: Hi, this is Frank.\nUser: A person, please."
    roles = [m["role"] for m in artifact["messages"]]
    assert roles == ["bot", "user", "tool_calls"]
    assert artifact["messages"][1]["time"] == 1_795_359_849_000
    assert artifact["messages"][1]["secondsFromStart"] == 4.0


def test_artifact_messages_cover_every_role() -> None:
    log = [
        {"role": "system", "content": "prompt", "timestamp": 0.0},
        {"role": "tool", "tool_call_id": "c1", "content": "done", "timestamp": 1.0},
        {"role": "assistant", "content": "", "timestamp": 2.0},  # empty: nothing to report
    ]
    out = artifact_messages(log, STARTED)
    assert [m["role"] for m in out] == ["system", "tool_call_result"]
    assert out[1]["toolCallId"] == "c1" and out[1]["result"] == "done"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            {
                "destination": {
                    "type": "number",
                    "number": "+15556660000",
                    "callerId": "+1555",
                    "extension": "101",
                }
            },
            Resolved("number", "+15556660000", caller_id="+1555", extension="101"),
        ),
        (
            {
                "destination": {"type": "number", "number": "+15556660000", "message": "Own."},
                "message": "Top.",
            },
            Resolved("number", "+15556660000", message="Own."),
        ),
        (
            {
                "destination": {"type": "sip", "sipUri": "sip:a@b.example", "sipHeaders": {"X-N": 4}},
                "message": "Top.",
            },
            Resolved("sip", "sip:a@b.example", headers={"X-N": "4"}, message="Top."),
        ),
        (
            {"destination": {"type": "assistant", "assistantName": "billing"}},
            Resolved("assistant", "billing"),
        ),
    ],
)
def test_good_answers(answer: dict[str, Any], expected: Resolved) -> None:
    assert parse_answer(answer).resolved == expected


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ({"error": "Closed on Sundays."}, "destination-error: Closed on Sundays."),
        ({"error": {"why": "closed"}}, 'destination-error: {"why": "closed"}'),
        ([1, 2], "destination-error: malformed answer (a JSON list)"),
        ({}, "destination-error: malformed answer (neither destination nor error)"),
        ({"destination": "+1555"}, "destination-error: malformed answer (destination is not an object)"),
        (
            {"destination": {"type": "number"}},
            "destination-error: malformed answer (number destination without",
        ),
        (
            {"destination": {"type": "sip", "sipUri": " "}},
            "destination-error: malformed answer (sip destination",
        ),
        ({"destination": {"type": "assistant"}}, "destination-error: malformed answer (assistant"),
        (
            {"destination": {"type": "fax", "number": "1"}},
            "destination-error: malformed answer (unknown destination",
        ),
    ],
)
def test_bad_answers(answer: Any, code: str) -> None:
    result = parse_answer(answer)
    assert result.resolved is None
    assert result.failure is not None and result.failure.startswith(code)


def client(http: httpx.AsyncClient, **kwargs: Any) -> DestinationClient:
    kwargs.setdefault("allow_private", True)
    return DestinationClient(http, **kwargs)


async def test_posts_with_auth_and_headers(routing_server: RoutingServer) -> None:
    routing_server.reply_json({"destination": {"type": "number", "number": "+15556660000"}})
    async with httpx.AsyncClient() as http:
        answer = await client(http).resolve(
            target(routing_server.url, user="acme", password="s3cret", headers={"X-Tenant": "acme"}), FACTS
        )
    assert answer.resolved == Resolved("number", "+15556660000")
    assert answer.status == 200
    (request,) = routing_server.received
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"acme:s3cret").decode()
    assert request.headers["x-tenant"] == "acme"
    assert request.json["message"]["type"] == "transfer-destination-request"


async def test_server_error_status(routing_server: RoutingServer) -> None:
    routing_server.answer = lambda _r: Reply(500, b"Internal Server Error")
    async with httpx.AsyncClient() as http:
        answer = await client(http).resolve(target(routing_server.url), FACTS)
    assert answer.failure == "destination-error: HTTP 500"


async def test_garbage_answer(routing_server: RoutingServer) -> None:
    routing_server.answer = lambda _r: Reply(200, b"<html>oops</html>")
    async with httpx.AsyncClient() as http:
        answer = await client(http).resolve(target(routing_server.url), FACTS)
    assert answer.failure == "destination-error: malformed answer (not JSON)"


async def test_slow_server_times_out(routing_server: RoutingServer) -> None:
    routing_server.answer = lambda _r: Reply(200, b"{}", delay=1.0)
    async with httpx.AsyncClient() as http:
        answer = await client(http).resolve(target(routing_server.url, timeout=0.2), FACTS)
    assert answer.failure == "timeout"


async def test_connection_refused() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with httpx.AsyncClient() as http:
        answer = await client(http).resolve(target(f"http://127.0.0.1:{port}/t"), FACTS)
    assert answer.failure is not None and answer.failure.startswith("destination-error: connection failed")


async def test_private_address_guard(routing_server: RoutingServer) -> None:
    async with httpx.AsyncClient() as http:
        refused = await DestinationClient(http).resolve(target(routing_server.url), FACTS)
        exempt = await DestinationClient(http, guard_exempt=lambda url: True).resolve(
            target(routing_server.url), FACTS
        )
        scheme = await DestinationClient(http).resolve(target("ftp://routing.example.com/t"), FACTS)
    assert refused.failure is not None and "private or loopback" in refused.failure
    assert exempt.failure == "destination-error: malformed answer (neither destination nor error)"
    assert scheme.failure is not None and "unsupported URL scheme" in scheme.failure
    assert len(routing_server.received) == 1  # only the exempt request went out
