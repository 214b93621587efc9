"""The `/twilio/*` route provider of `callgate serve`: on only with an auth token and a public URL."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.routing import Route, WebSocketRoute

from callgate.server.app import ServerContext
from callgate.server.twilio import routes


class _Host:
    def live(self) -> list[Any]:
        return []

    async def accept(self, call: Any) -> None: ...


def test_without_a_token_or_public_url_there_are_no_twilio_routes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    assert routes(ServerContext(live=_Host(), env={"TWILIO_AUTH_TOKEN": "t"})) == []  # type: ignore[arg-type]
    assert "--public-url" in caplog.text
    context = ServerContext(live=_Host(), env={}, extras={"public_url": "https://x.test"})  # type: ignore[arg-type]
    assert routes(context) == []
    assert "TWILIO_AUTH_TOKEN" in caplog.text


def test_a_bad_public_url_is_reported_not_served(caplog: pytest.LogCaptureFixture) -> None:
    context = ServerContext(live=_Host(), env={"TWILIO_AUTH_TOKEN": "t"}, extras={"public_url": "ftp://x"})  # type: ignore[arg-type]
    assert routes(context) == []
    assert "--public-url must be an http(s) URL" in caplog.text


def test_with_both_the_webhooks_and_the_stream_are_served() -> None:
    context = ServerContext(
        live=_Host(),  # type: ignore[arg-type]
        env={"TWILIO_AUTH_TOKEN": "t", "TWILIO_ACCOUNT_SID": "AC1"},
        extras={"public_url": "https://agent.example.test"},
    )
    served = routes(context)
    paths = {route.path for route in served if isinstance(route, Route | WebSocketRoute)}
    assert {"/twilio/voice", "/twilio/status", "/twilio/stream"} <= paths
    assert context.extras["twilio"].config.stream_url == "wss://agent.example.test/twilio/stream"
