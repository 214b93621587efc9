"""Fetching documents by URL against real loopback servers: SignalWire's POST, basic auth, call_id."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from signalwire_agents import AgentBase
from signalwire_agents.core.function_result import SwaigFunctionResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from callgate.swml import CallInfo, DocumentError, fetch_document, load_document
from callgate.swml.fetch import redact_url, request_body, split_credentials

# The `loopback` fixture (conftest.py): serve an ASGI app on 127.0.0.1, yielding its base URL.
ServeApp = Callable[[Any], AbstractContextManager[str]]

DOCUMENT_YAML = """\
version: 1.0.0
sections:
  main:
    - answer
    - ai:
        prompt:
          text: You are served over HTTP.
        SWAIG:
          defaults:
            web_hook_url: http://127.0.0.1:1/swaig
          functions:
            - function: lookup
              description: Look something up
"""


class Recorder:
    """A document server that remembers what it was sent."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.never = asyncio.Event()

    def _record(self, request: Request, body: bytes) -> dict[str, Any]:
        entry = {
            "method": request.method,
            "path": request.url.path,
            "auth": request.headers.get("authorization"),
            "content_type": request.headers.get("content-type"),
            "body": json.loads(body) if body else None,
        }
        self.requests.append(entry)
        return entry

    async def yaml_doc(self, request: Request) -> Response:
        entry = self._record(request, await request.body())
        expected = "Basic " + base64.b64encode(b"agent:p@ss word").decode()
        if entry["auth"] != expected:
            return PlainTextResponse("who are you?", status_code=401)
        return PlainTextResponse(DOCUMENT_YAML, media_type="application/yaml")

    async def json_doc(self, request: Request) -> Response:
        self._record(request, await request.body())
        return JSONResponse({"sections": {"main": [{"ai": {"prompt": {"text": "json"}}}]}})

    async def broken_json(self, request: Request) -> Response:
        self._record(request, await request.body())
        return Response('{\n  "sections": {\n    "main": [,]\n  }\n}', media_type="application/json")

    async def html(self, request: Request) -> Response:
        self._record(request, await request.body())
        return Response("<html><body>Welcome</body></html>", media_type="text/html")

    async def server_error(self, request: Request) -> Response:
        self._record(request, await request.body())
        return PlainTextResponse("database down", status_code=503)

    async def slow(self, request: Request) -> Response:
        self._record(request, await request.body())
        await self.never.wait()  # never set: the client's timeout ends the request
        return PlainTextResponse("too late")

    def app(self) -> Starlette:
        routes = [
            Route("/agent.yaml", self.yaml_doc, methods=["POST"]),
            Route("/agent.json", self.json_doc, methods=["POST"]),
            Route("/broken", self.broken_json, methods=["POST"]),
            Route("/html", self.html, methods=["POST"]),
            Route("/error", self.server_error, methods=["POST"]),
            Route("/slow", self.slow, methods=["POST"]),
        ]
        return Starlette(routes=routes)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def _with_auth(base: str, path: str, user: str = "agent", password: str = "p%40ss%20word") -> str:
    return base.replace("http://", f"http://{user}:{password}@") + path


def test_load_document_posts_signalwire_request_with_basic_auth(
    loopback: ServeApp, recorder: Recorder
) -> None:
    call = CallInfo(from_number="+15551110000", to_number="+15552220000", caller_name="Ada")
    with loopback(recorder.app()) as base:
        result = load_document(_with_auth(base, "/agent.yaml"), call=call, timeout=10)
    (sent,) = recorder.requests
    assert sent["method"] == "POST" and sent["content_type"] == "application/json"
    assert sent["body"] == {
        "call": {
            "call_id": call.call_id,
            "direction": "inbound",
            "type": "phone",
            "from": "+15551110000",
            "to": "+15552220000",
            "headers": {},
            "caller_id_name": "Ada",
        },
        "vars": {},
        "envs": {},
        "params": {},
    }
    assert result.call is call
    assert result.origin_host == "127.0.0.1"
    assert result.source is not None and "p%40ss" not in result.source and "***" in result.source
    # The webhook on the document's own host is allowed even though it is loopback.
    assert result.warnings == []
    assert [verb.name for verb in result.document.sections["main"]] == ["answer", "ai"]


async def test_fetch_document_async_generates_and_returns_the_call(
    loopback: ServeApp, recorder: Recorder
) -> None:
    with loopback(recorder.app()) as base:
        result = await fetch_document(
            base + "/agent.json", vars={"lang": "en"}, params={"campaign": "x"}, timeout=10
        )
        async with httpx.AsyncClient() as client:
            again = await fetch_document(base + "/agent.json", call=result.call, client=client, timeout=10)
    first, second = recorder.requests
    assert result.call is not None and result.call.call_id
    assert first["body"]["call"]["call_id"] == second["body"]["call"]["call_id"] == result.call.call_id
    assert first["body"]["vars"] == {"lang": "en"} and first["body"]["params"] == {"campaign": "x"}
    assert first["auth"] is None
    ai = again.document.find_ai()
    assert ai is not None and ai.prompt.text == "json"


def test_wrong_password_is_an_http_error_without_the_password(loopback: ServeApp, recorder: Recorder) -> None:
    with loopback(recorder.app()) as base, pytest.raises(DocumentError) as info:
        load_document(_with_auth(base, "/agent.yaml", password="hunter2-secret"))
    (error,) = info.value.issues
    assert "HTTP 401" in error.message and "who are you?" in error.message
    assert "hunter2-secret" not in str(error)
    assert error.source is not None and error.source.endswith("/agent.yaml")


@pytest.mark.parametrize(
    ("path", "needle", "line"),
    [
        ("/error", "HTTP 503 Service Unavailable: database down", None),
        ("/html", "did not answer with a SWML document (text/html", None),
        ("/broken", "invalid JSON", 3),
    ],
)
def test_bad_answers(
    loopback: ServeApp, recorder: Recorder, path: str, needle: str, line: int | None
) -> None:
    with loopback(recorder.app()) as base, pytest.raises(DocumentError) as info:
        load_document(base + path)
    (error,) = info.value.issues
    assert needle in error.message
    assert error.line == line


async def test_timeout_is_reported(loopback: ServeApp, recorder: Recorder) -> None:
    with loopback(recorder.app()) as base:
        with pytest.raises(DocumentError) as info:
            await fetch_document(base + "/slow", timeout=0.3)
        with pytest.raises(DocumentError) as sync_info:
            load_document(base + "/slow", timeout=0.3)
    assert "timeout" in info.value.issues[0].message
    assert "timeout" in sync_info.value.issues[0].message


def test_unreachable_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DocumentError) as info:
        load_document(f"http://u:topsecret@127.0.0.1:{port}/agent", timeout=5)
    (error,) = info.value.issues
    assert "could not fetch" in error.message
    assert "topsecret" not in str(error)


def test_url_helpers() -> None:
    assert split_credentials("https://a%20b:p%40ss@h.example.com:8443/x?y=1") == (
        "https://h.example.com:8443/x?y=1",
        ("a b", "p@ss"),
    )
    assert split_credentials("https://h.example.com/x") == ("https://h.example.com/x", None)
    assert redact_url("https://me:secret@h.example.com/x") == "https://me:***@h.example.com/x"
    assert redact_url("https://h.example.com/x") == "https://h.example.com/x"
    body = request_body(CallInfo(call_id="c-1"), envs={"E": "1"})
    assert body == {
        "call": {
            "call_id": "c-1",
            "direction": "inbound",
            "type": "phone",
            "from": "",
            "to": "",
            "headers": {},
        },
        "vars": {},
        "envs": {"E": "1"},
        "params": {},
    }
    assert CallInfo().call_id != CallInfo().call_id


def _sdk_agent() -> AgentBase:
    agent = AgentBase(
        name="sdk", route="/sdk", host="127.0.0.1", port=3000, basic_auth=("sdkuser", "sdkpass")
    )
    agent.prompt_add_section("Role", body="You answer the weather.")

    def weather(args: dict[str, Any], raw: dict[str, Any]) -> SwaigFunctionResult:
        return SwaigFunctionResult(f"Sunny in {args.get('city')}")

    agent.define_tool(
        name="get_weather",
        description="Weather for a city",
        parameters={"city": {"type": "string", "description": "city"}},
        handler=weather,
    )
    return agent


async def _call_swaig(
    client: httpx.AsyncClient, base: str, web_hook_url: str, call_id: str
) -> dict[str, Any]:
    parts = urlsplit(web_hook_url)
    token = parse_qs(parts.query)["__token"][0]
    response = await client.post(
        f"{base}{parts.path}",
        params={"__token": token},
        auth=("sdkuser", "sdkpass"),
        json={"function": "get_weather", "call_id": call_id, "argument": {"parsed": [{"city": "Oslo"}]}},
    )
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


async def test_sdk_binds_function_tokens_to_the_fetch_call_id(loopback: ServeApp) -> None:
    """The document an SDK agent serves only works for the call_id it was fetched with."""
    with loopback(_sdk_agent().get_app()) as base:
        call = CallInfo(from_number="+15551110000", to_number="+15552220000")
        result = await fetch_document(_with_auth(base, "/sdk/", "sdkuser", "sdkpass"), call=call, timeout=20)
        ai = result.document.find_ai()
        assert ai is not None and ai.prompt.pom is not None
        (function,) = ai.SWAIG.functions
        assert function.web_hook_url is not None
        async with httpx.AsyncClient(timeout=20) as client:
            same = await _call_swaig(client, base, function.web_hook_url, call.call_id)
            other = await _call_swaig(client, base, function.web_hook_url, "another-call-id")
    assert same["response"] == "Sunny in Oslo"
    assert "Oslo" not in other["response"] and "token" in other["response"]
