"""Fixtures for the model client tests: the scripted model server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any

import pytest

from callgate.llm.client import OpenAIChatModel
from callgate.llm.types import ModelError, ModelSettings, StreamEvent
from callgate.scenario.model_server import ScriptedModelServer, ScriptEntry

Scripts = Mapping[str, Sequence[ScriptEntry | Mapping[str, Any]]]
ServeFn = Callable[[Scripts], Awaitable[ScriptedModelServer]]


@pytest.fixture
async def serve() -> AsyncIterator[ServeFn]:
    """Start a ScriptedModelServer for the given scripts; every server is stopped after the test."""
    async with AsyncExitStack() as stack:

        async def start(scripts: Scripts) -> ScriptedModelServer:
            return await stack.enter_async_context(ScriptedModelServer(scripts))

        yield start


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[..., OpenAIChatModel]]:
    """Build OpenAIChatModels with fast back-off; every one is closed after the test."""
    clients: list[OpenAIChatModel] = []

    def make(base_url: str, **options: Any) -> OpenAIChatModel:
        options.setdefault("backoff", 0.01)
        client = OpenAIChatModel(base_url, "test-key", **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def collect(
    model: OpenAIChatModel,
    messages: list[dict[str, Any]] | None = None,
    tools: list[dict[str, Any]] | None = None,
    settings: ModelSettings | None = None,
) -> tuple[list[StreamEvent], ModelError | None]:
    """All events of one reply, and the ModelError that ended it (if any)."""
    events: list[StreamEvent] = []
    try:
        async for event in model.stream(
            messages or [{"role": "user", "content": "hello"}], tools, settings or ModelSettings(model="m")
        ):
            events.append(event)
    except ModelError as error:
        return events, error
    return events, None
