"""The lean HTTP/1.1 transport against real servers on loopback: framing, keep-alive, failures."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import httpx
import pytest

from callgate.http1 import Http1Transport
from callgate.http_pool import ssl_context
from callgate.scenario.model_server import ScriptedModelServer

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
RawServe = Callable[[Handler], Awaitable[str]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


@pytest.fixture
async def raw_serve() -> AsyncIterator[RawServe]:
    """A raw TCP server per test, answering with whatever bytes the test writes."""
    async with AsyncExitStack() as stack:

        async def start(handler: Handler) -> str:
            server = await asyncio.start_server(handler, "127.0.0.1", 0)
            stack.push_async_callback(server.wait_closed)
            stack.callback(server.close)
            return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

        yield start


@pytest.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, Http1Transport]]:
    transport = Http1Transport(ssl_context())
    async with httpx.AsyncClient(transport=transport) as http:
        yield http, transport


async def test_streams_reuse_one_kept_alive_connection(
    client: tuple[httpx.AsyncClient, Http1Transport],
) -> None:
    http, transport = client
    async with ScriptedModelServer({"agent": [{"text": "one two"}, {"text": "three"}]}) as server:
        for _ in range(2):
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
            async with http.stream("POST", server.base_url("agent") + "/chat/completions", json=body) as r:
                assert r.status_code == 200
                text = b"".join([chunk async for chunk in r.aiter_bytes()])
            assert text.rstrip().endswith(b"data: [DONE]")
    assert transport.opened == 1


async def test_length_chunked_and_close_delimited_bodies(
    raw_serve: RawServe, client: tuple[httpx.AsyncClient, Http1Transport]
) -> None:
    http, transport = client
    replies = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n"
        b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\n\r\nto the end",
    ]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for reply in replies:
            await read_request(reader)
            writer.write(reply)
        writer.close()

    base = await raw_serve(handler)
    first = await http.get(base + "/a")
    second = await http.post(base + "/b", content=b"payload")
    third = await http.get(base + "/c")
    assert (first.status_code, first.text) == (200, "hello")
    assert (second.status_code, second.text, second.headers["x-a"]) == (201, "abcde", "b")
    assert (third.status_code, third.text, third.reason_phrase) == (404, "to the end", "Not Found")
    assert transport.opened == 1  # kept alive until the body that ends with the connection


async def test_a_connection_closed_while_idle_is_replaced(
    raw_serve: RawServe, client: tuple[httpx.AsyncClient, Http1Transport]
) -> None:
    http, transport = client
    served = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await read_request(reader)
        served += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # keep-alive promised, then dropped

    base = await raw_serve(handler)
    assert (await http.get(base)).text == "ok"
    await asyncio.sleep(0.05)
    assert (await http.get(base)).text == "ok"
    assert served == 2 and transport.opened == 2


async def test_a_body_cut_short_is_a_protocol_error(
    raw_serve: RawServe, client: tuple[httpx.AsyncClient, Http1Transport]
) -> None:
    http, _ = client

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        await writer.drain()
        writer.close()

    base = await raw_serve(handler)
    with pytest.raises(httpx.RemoteProtocolError):
        await http.get(base)


async def test_a_body_left_unread_does_not_go_back_to_the_pool(
    raw_serve: RawServe, client: tuple[httpx.AsyncClient, Http1Transport]
) -> None:
    http, transport = client

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabcdef")

    base = await raw_serve(handler)
    async with http.stream("GET", base) as response:
        assert response.status_code == 200  # the body is never read
    assert (await http.get(base)).text == "abcdef"
    assert (await http.get(base)).text == "abcdef"
    assert transport.opened == 2


async def test_nobody_listening_is_a_connect_error(client: tuple[httpx.AsyncClient, Http1Transport]) -> None:
    http, _ = client
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        await http.get(f"http://127.0.0.1:{port}/")
