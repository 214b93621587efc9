from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from callgate.channels.sip import SipCall, SipConfig, SipEndpoint
from speech.conftest import speech_server  # noqa: F401  (the loopback OpenAI speech server fixture)

Handler = Callable[[SipCall], Awaitable[None]]


class EndpointHarness:
    """A SipEndpoint on a free loopback port whose call handler each test sets."""

    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint
        self.handler: Handler | None = None
        self.calls: list[SipCall] = []

    @property
    def port(self) -> int:
        return self.endpoint.port

    async def on_call(self, call: SipCall) -> None:
        self.calls.append(call)
        assert self.handler is not None, "the test set no call handler"
        await self.handler(call)


@pytest.fixture
async def sip(request: pytest.FixtureRequest) -> AsyncIterator[EndpointHarness]:
    marker = request.node.get_closest_marker("sip_config")
    options = dict(marker.kwargs) if marker else {}
    config = SipConfig(host="127.0.0.1", port=0, hangup_delay_ms=200, **options)
    harness_ref: list[EndpointHarness] = []

    async def on_call(call: SipCall) -> None:
        await harness_ref[0].on_call(call)

    endpoint = SipEndpoint(config, on_call=on_call)
    harness = EndpointHarness(endpoint)
    harness_ref.append(harness)
    await endpoint.start()
    try:
        yield harness
    finally:
        await endpoint.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sip_config(**kwargs): SipConfig fields for the `sip` fixture")
