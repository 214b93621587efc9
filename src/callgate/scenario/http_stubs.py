"""Stubbed outbound HTTP for scenarios: an httpx transport that answers from the scenario's `http` list.

Every request is recorded as an `HttpExchange` (what `expect.http` checks) as it arrives, so one the
client gives up on (a stub's `delay` past the client's timeout) is still seen; its status is filled
in once it is answered. A request no stub matches is answered 404 and noted in the timeline; with
`strict_http` it is also a failure. Requests matching a `passthrough` glob (and the `agent:` URL) go
to the real network, inside `clock.hold()` so virtual time stands still while another process
answers — and so the request's own timeout, a timer on the virtual clock, cannot fire: the whole
exchange (headers and every read of the body) is bounded by that timeout in real seconds instead
(`RealTimeLimit`). Credentials never reach the records: URLs lose their user:password part and
headers are not recorded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from fnmatch import fnmatchcase
from typing import Any

import httpx

from callgate.scenario.format import HttpStub
from callgate.telephony.clock import Clock, RealTimeLimit, holding
from callgate.timeline import HttpExchange, Timeline

# Real seconds a passthrough exchange may take when its request carries no timeout of its own.
DEFAULT_REAL_TIMEOUT = 30.0


def public_url(url: httpx.URL) -> str:
    """The URL as recorded and matched: without user:password (never recorded in plain text)."""
    return str(url.copy_with(username=None, password=None)) if url.userinfo else str(url)


def _parse_body(content: bytes) -> tuple[Any, str | None]:
    """(parsed JSON or None, text body or None) of a request body."""
    if not content:
        return None, None
    text = content.decode("utf-8", errors="replace")
    try:
        return json.loads(text), text
    except ValueError:
        return None, text


class StubTransport(httpx.AsyncBaseTransport):
    """Answers requests from stubs (first match wins), forwards passthrough URLs, records everything."""

    def __init__(
        self,
        stubs: Sequence[HttpStub],
        *,
        clock: Clock,
        timeline: Timeline,
        now: Callable[[], float] | None = None,
        passthrough: Sequence[str] = (),
        passthrough_exact: Sequence[str] = (),
        strict: bool = False,
        real_transport: httpx.AsyncBaseTransport | None = None,
        real_timeout: float = DEFAULT_REAL_TIMEOUT,
    ) -> None:
        self._stubs = list(stubs)
        self._clock = clock
        self._now = now or clock.monotonic
        self._timeline = timeline
        self._passthrough = list(passthrough)
        # Normalised the way httpx spells request URLs, so an exact URL matches its own request.
        self._exact = {public_url(httpx.URL(url)) for url in passthrough_exact}
        self._strict = strict
        self._real = real_transport
        self._real_timeout = real_timeout
        self.exchanges: list[HttpExchange] = []
        self.failures: list[str] = []

    def is_passthrough(self, url: str | httpx.URL) -> bool:
        """True for URLs that go to the real network (the engine exempts them from the private-URL guard)."""
        text = public_url(httpx.URL(url)) if isinstance(url, str) else public_url(url)
        return text in self._exact or any(fnmatchcase(text, glob) for glob in self._passthrough)

    def match(self, method: str, url: str) -> HttpStub | None:
        for stub in self._stubs:
            if (stub.method is None or stub.method == method.upper()) and fnmatchcase(url, stub.url):
                return stub
        return None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        content = await request.aread()
        parsed, text = _parse_body(content)
        url = public_url(request.url)
        method = request.method.upper()
        if self.is_passthrough(request.url):
            exchange = self._arrived(method, url, parsed, text, stubbed=False)
            response = await self._forward(request, method, url)
            self._answered(exchange, response.status_code, passthrough=True)
            return response
        stub = self.match(method, url)
        if stub is None:
            exchange = self._arrived(method, url, parsed, text, stubbed=False)
            self._answered(exchange, 404, unmatched=True)
            if self._strict:
                self.failures.append(f"http: no stub for {method} {url} (strict_http)")
            return httpx.Response(404, json={"error": f"no stub for {method} {url}"}, request=request)
        exchange = self._arrived(method, url, parsed, text, stubbed=True)
        if stub.delay > 0:
            try:
                # On the scenario's virtual clock this advances time rather than waiting.
                await self._clock.sleep(stub.delay)
            except asyncio.CancelledError:
                # The client gave up waiting (its timeout): the request was made all the same.
                self._timeline.add(
                    self._now(), "http-abandoned", "caller", method=method, url=url, after=stub.delay
                )
                raise
        self._answered(exchange, stub.status)
        return self._answer(stub, request)

    async def _forward(self, request: httpx.Request, method: str, url: str) -> httpx.Response:
        if self._real is None:
            self._real = httpx.AsyncHTTPTransport()
        limit = RealTimeLimit(_request_timeout(request) or self._real_timeout)
        try:
            async with holding(self._clock), limit.running():
                response = await self._real.handle_async_request(request)
        except TimeoutError:
            error = httpx.ReadTimeout(f"no answer within {limit.seconds:g} s (real time)", request=request)
            self._timeline.add(self._now(), "http-error", method=method, url=url, error=str(error))
            raise error from None
        except httpx.HTTPError as exc:
            self._timeline.add(self._now(), "http-error", method=method, url=url, error=str(exc))
            raise
        # The body also arrives in real time: each read holds the clock, within the same limit.
        # Read as it is consumed, so the reader's own size cap stops an endless body.
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _HeldBody(response.stream, self._clock, limit, request)
        return response

    @staticmethod
    def _answer(stub: HttpStub, request: httpx.Request) -> httpx.Response:
        headers = dict(stub.headers)
        if stub.has_json:
            return httpx.Response(stub.status, json=stub.json_body, headers=headers, request=request)
        return httpx.Response(stub.status, text=stub.body or "", headers=headers, request=request)

    def _arrived(self, method: str, url: str, parsed: Any, text: str | None, *, stubbed: bool) -> int:
        """Record the request now (status None until answered); its place in `exchanges`."""
        exchange = HttpExchange(method=method, url=url, json=parsed, body=text, status=None, stubbed=stubbed)
        self.exchanges.append(exchange)
        return len(self.exchanges) - 1

    def _answered(
        self, index: int, status: int, *, passthrough: bool = False, unmatched: bool = False
    ) -> None:
        exchange = self.exchanges[index] = replace(self.exchanges[index], status=status)
        kind = "http-unmatched" if unmatched else "http"
        data: dict[str, object] = {"method": exchange.method, "url": exchange.url, "status": status}
        if passthrough:
            data["passthrough"] = True
        self._timeline.add(self._now(), kind, "caller", **data)

    async def aclose(self) -> None:
        if self._real is not None:
            await self._real.aclose()


def _request_timeout(request: httpx.Request) -> float | None:
    """The longest of the request's own timeouts (httpx puts them in its extensions), if any."""
    timeouts = request.extensions.get("timeout")
    if not isinstance(timeouts, dict):
        return None
    values = [float(v) for v in timeouts.values() if isinstance(v, int | float)]
    return max(values) if values else None


class _HeldBody(httpx.AsyncByteStream):
    """A passthrough response's body, read on demand: each read holds virtual time and must end
    within what is left of the exchange's real-time limit."""

    def __init__(
        self, inner: httpx.AsyncByteStream, clock: Clock, limit: RealTimeLimit, request: httpx.Request
    ) -> None:
        self._inner = inner
        self._clock = clock
        self._limit = limit
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._inner.__aiter__()
        while True:
            try:
                async with holding(self._clock), self._limit.running():
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                message = f"the body did not arrive within {self._limit.seconds:g} s (real time)"
                raise httpx.ReadTimeout(message, request=self._request) from None
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()
