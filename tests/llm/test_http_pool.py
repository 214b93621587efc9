"""One HTTP client per model endpoint for the process: models made per call share it."""

from __future__ import annotations

import asyncio

from callgate.http_pool import HttpPool, shared_pool
from callgate.llm.client import OpenAIChatModel
from callgate.llm.factory import make_model
from callgate.llm.types import ModelSettings, StreamDone, TextDelta

from .conftest import ServeFn, collect


def _model(url: str) -> OpenAIChatModel:
    model = make_model(url, None, {})
    assert isinstance(model, OpenAIChatModel)
    return model


async def test_models_of_one_endpoint_share_one_client(serve: ServeFn) -> None:
    server = await serve({"agent": [{"text": "one"}, {"text": "two"}], "summary": []})
    try:
        first, second = _model(server.base_url("agent")), _model(server.base_url("agent"))
        other_path = _model(server.base_url("summary"))  # same origin, another path
        assert first.http_client is second.http_client is other_path.http_client
        assert first.http_client is shared_pool().model_client(server.base_url("agent"))
        elsewhere = _model("http://localhost:9/v1")
        assert elsewhere.http_client is not first.http_client
        results = await asyncio.gather(collect(first), collect(second))
        texts = sorted("".join(e.text for e in events if isinstance(e, TextDelta)) for events, _ in results)
        assert texts == ["one", "two"]
        await first.aclose()  # a call's model going away leaves the shared client open
        assert not second.http_client.is_closed
    finally:
        await shared_pool().aclose()


async def test_each_event_loop_has_its_own_pool() -> None:
    here = shared_pool()

    def in_another_loop() -> HttpPool:
        async def pool() -> HttpPool:
            return shared_pool()

        return asyncio.run(pool())

    other = await asyncio.to_thread(in_another_loop)
    assert other is not here
    assert shared_pool() is here


async def test_closing_the_pool_closes_its_clients_and_starts_afresh() -> None:
    pool = HttpPool()
    client = pool.model_client("https://api.example.com/v1")
    webhooks = pool.webhooks()
    assert pool.webhooks() is webhooks and not webhooks.follow_redirects
    assert pool.model_client("https://api.example.com:443/other") is client  # the same origin
    assert pool.clients == 2
    await pool.aclose()
    assert client.is_closed and webhooks.is_closed
    assert pool.model_client("https://api.example.com/v1") is not client


async def test_time_the_consumer_takes_is_not_a_stalled_server(serve: ServeFn) -> None:
    server = await serve({"agent": [{"text": "one two three"}]})
    model = OpenAIChatModel(server.base_url("agent"), None, first_token_timeout=0.3, chunk_timeout=0.3)
    events = []
    try:
        async for event in model.stream([{"role": "user", "content": "hi"}], None, ModelSettings()):
            events.append(event)
            if isinstance(event, TextDelta):
                await asyncio.sleep(0.5)  # longer than chunk_timeout: speaking, say
    finally:
        await model.aclose()
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "one two three"
    assert isinstance(events[-1], StreamDone)


async def test_a_server_stalling_mid_reply_times_out_after_text(serve: ServeFn) -> None:
    server = await serve({"agent": [{"text": "Let me check that for you.", "stall_after": 7}]})
    model = OpenAIChatModel(server.base_url("agent"), None, chunk_timeout=0.3, backoff=0.01)
    try:
        events, error = await collect(model)
    finally:
        await model.aclose()
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Let me "
    assert error is not None and error.kind == "timeout" and error.produced_text
    assert "next chunk" in error.message
    assert len(server.requests) == 1
