"""StubTransport: matching, delay on the virtual clock, 404, strict_http, passthrough to a real server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from callgate.scenario.format import HttpStub
from callgate.scenario.http_stubs import StubTransport
from callgate.telephony.clock import VirtualClock, run_virtual
from callgate.timeline import Timeline


def stubs(*items: dict[str, Any]) -> list[HttpStub]:
    return [HttpStub.model_validate(item) for item in items]


def make(clock: VirtualClock, items: list[HttpStub], **options: Any) -> tuple[StubTransport, Timeline]:
    timeline = Timeline()
    return StubTransport(items, clock=clock, timeline=timeline, **options), timeline


def test_json_stub_answers_and_records() -> None:
    async def main(clock: VirtualClock) -> None:
        transport, timeline = make(
            clock,
            stubs(
                {"method": "GET", "url": "https://example.com/a*", "body": "wrong method"},
                {
                    "method": "POST",
                    "url": "https://example.com/functions*",
                    "json": {"response": "It is sunny."},
                    "headers": {"X-Stub": "yes"},
                },
            ),
        )
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.post("https://example.com/functions?fn=weather", json={"city": "Paris"})
        assert response.status_code == 200
        assert response.json() == {"response": "It is sunny."}
        assert response.headers["x-stub"] == "yes"
        (exchange,) = transport.exchanges
        assert exchange.method == "POST"
        assert exchange.url == "https://example.com/functions?fn=weather"
        assert exchange.json == {"city": "Paris"}
        assert exchange.status == 200 and exchange.stubbed
        assert [e.kind for e in timeline.events] == ["http"]

    run_virtual(main)


def test_first_matching_stub_wins_and_body_status() -> None:
    async def main(clock: VirtualClock) -> None:
        transport, _ = make(
            clock,
            stubs(
                {"url": "https://example.com/x", "body": "first", "status": 201},
                {"url": "https://example.com/*", "body": "second"},
            ),
        )
        async with httpx.AsyncClient(transport=transport) as client:
            first = await client.put("https://example.com/x", content=b"not json")
            second = await client.get("https://example.com/y")
        assert (first.status_code, first.text) == (201, "first")
        assert (second.status_code, second.text) == (200, "second")
        assert transport.exchanges[0].json is None and transport.exchanges[0].body == "not json"

    run_virtual(main)


def test_glob_matches_full_url_including_query() -> None:
    async def main(clock: VirtualClock) -> None:
        transport, _ = make(clock, stubs({"url": "https://example.com/f?id=1", "body": "ok"}))
        async with httpx.AsyncClient(transport=transport) as client:
            assert (await client.get("https://example.com/f?id=1")).status_code == 200
            assert (await client.get("https://example.com/f?id=2")).status_code == 404

    run_virtual(main)


def test_delay_advances_virtual_time() -> None:
    async def main(clock: VirtualClock) -> float:
        transport, timeline = make(clock, stubs({"url": "https://slow.test/*", "json": {}, "delay": "2.5s"}))
        before = clock.monotonic()
        async with httpx.AsyncClient(transport=transport) as client:
            await client.get("https://slow.test/x")
        assert timeline.events[0].t == pytest.approx(before + 2.5)
        return clock.monotonic() - before

    assert run_virtual(main) == pytest.approx(2.5)


def test_unmatched_request_is_404_and_noted() -> None:
    async def main(clock: VirtualClock) -> None:
        transport, timeline = make(
            clock, stubs({"method": "POST", "url": "https://example.com/*", "json": {}})
        )
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get("https://example.com/a")
        assert response.status_code == 404
        assert transport.exchanges[0].status == 404 and not transport.exchanges[0].stubbed
        assert timeline.events[0].kind == "http-unmatched"
        assert transport.failures == []

    run_virtual(main)


def test_strict_http_turns_unmatched_into_failure() -> None:
    async def main(clock: VirtualClock) -> None:
        transport, _ = make(clock, [], strict=True)
        async with httpx.AsyncClient(transport=transport) as client:
            assert (await client.delete("https://nowhere.test/thing")).status_code == 404
        assert transport.failures == ["http: no stub for DELETE https://nowhere.test/thing (strict_http)"]

    run_virtual(main)


def test_credentials_are_never_recorded() -> None:
    async def main(clock: VirtualClock) -> None:
        transport, timeline = make(clock, stubs({"url": "https://hooks.test/*", "json": {"ok": True}}))
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.post(
                "https://alice:s3cret@hooks.test/fn",
                json={"a": 1},
                headers={"Authorization": "Bearer tok-123"},
            )
        assert response.status_code == 200
        (exchange,) = transport.exchanges
        assert exchange.url == "https://hooks.test/fn"
        everything = repr(transport.exchanges) + timeline.render()
        assert "s3cret" not in everything and "tok-123" not in everything

    run_virtual(main)


# ---------------------------------------------------------------- passthrough to a real server


class _Echo(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        _Echo.received.append(("POST", self.path, body))
        payload = json.dumps({"echo": json.loads(body or b"null")}).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    _Echo.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_passthrough_goes_to_the_real_server(echo_server: str) -> None:
    async def main(clock: VirtualClock) -> None:
        transport, timeline = make(
            clock,
            stubs({"url": f"{echo_server}/*", "json": {"stub": True}}),
            passthrough=[f"{echo_server}/real/*"],
        )
        async with httpx.AsyncClient(transport=transport, timeout=5) as client:
            real = await client.post(f"{echo_server}/real/hook", json={"n": 1})
            stubbed = await client.post(f"{echo_server}/other", json={"n": 2})
        assert real.status_code == 202 and real.json() == {"echo": {"n": 1}}
        assert stubbed.json() == {"stub": True}
        assert [(m, p) for m, p, _ in _Echo.received] == [("POST", "/real/hook")]
        passthrough, stubbed_exchange = transport.exchanges
        assert passthrough.stubbed is False and passthrough.status == 202 and passthrough.json == {"n": 1}
        assert stubbed_exchange.stubbed is True
        assert timeline.events[0].data.get("passthrough") is True
        assert transport.is_passthrough(f"{echo_server}/real/x")
        assert not transport.is_passthrough(f"{echo_server}/other")
        await transport.aclose()

    run_virtual(main)


def test_passthrough_exact_url(echo_server: str) -> None:
    async def main(clock: VirtualClock) -> None:
        url = f"{echo_server}/agent.json?v=[1]"
        transport, _ = make(clock, [], passthrough_exact=[url])
        assert transport.is_passthrough(url)
        assert not transport.is_passthrough(f"{echo_server}/agent.json?v=1")

    run_virtual(main)


def test_passthrough_connection_error_is_raised_and_noted() -> None:
    async def main(clock: VirtualClock) -> None:
        # Port 9 on loopback: nothing listens there, the connection is refused at once.
        transport, timeline = make(clock, [], passthrough=["http://127.0.0.1:9/*"])
        async with httpx.AsyncClient(transport=transport, timeout=5) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get("http://127.0.0.1:9/x")
        assert timeline.events[-1].kind == "http-error"

    run_virtual(main)
