"""Stubbed outbound HTTP for scenarios: an httpx transport that answers from the scenario's `http` list.

Every request is recorded as an `HttpExchange` (what `expect.http` checks). A request no stub matches
is answered 404 and noted in the timeline; with `strict_http` it is also a failure. Requests matching
a `passthrough` glob go to the real network, inside `clock.hold()` so virtual time stands still while
another process answers. Credentials never reach the records: URLs lose their user:password part and
headers are not recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
from typing import Any

import httpx

from callgate.scenario.format import HttpStub
from callgate.telephony.clock import Clock, holding
from callgate.timeline import HttpExchange, Timeline


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
            response = await self._forward(request, method, url)
            self._record(method, url, parsed, text, response.status_code, stubbed=False)
            return response
        stub = self.match(method, url)
        if stub is None:
            self._record(method, url, parsed, text, 404, stubbed=False, unmatched=True)
            if self._strict:
                self.failures.append(f"http: no stub for {method} {url} (strict_http)")
            return httpx.Response(404, json={"error": f"no stub for {method} {url}"}, request=request)
        if stub.delay > 0:
            # On the scenario's virtual clock this advances time rather than waiting.
            await self._clock.sleep(stub.delay)
        self._record(method, url, parsed, text, stub.status, stubbed=True)
        return self._answer(stub, request)

    async def _forward(self, request: httpx.Request, method: str, url: str) -> httpx.Response:
        if self._real is None:
            self._real = httpx.AsyncHTTPTransport()
        async with holding(self._clock):
            try:
                response = await self._real.handle_async_request(request)
                # Read inside the hold: the body also arrives in real time.
                await response.aread()
            except httpx.HTTPError as exc:
                self._timeline.add(self._now(), "http-error", method=method, url=url, error=str(exc))
                raise
        return response

    @staticmethod
    def _answer(stub: HttpStub, request: httpx.Request) -> httpx.Response:
        headers = dict(stub.headers)
        if stub.has_json:
            return httpx.Response(stub.status, json=stub.json_body, headers=headers, request=request)
        return httpx.Response(stub.status, text=stub.body or "", headers=headers, request=request)

    def _record(
        self,
        method: str,
        url: str,
        parsed: Any,
        text: str | None,
        status: int,
        *,
        stubbed: bool,
        unmatched: bool = False,
    ) -> None:
        exchange = HttpExchange(
            method=method, url=url, json=parsed, body=text, status=status, stubbed=stubbed
        )
        self.exchanges.append(exchange)
        kind = "http-unmatched" if unmatched else "http"
        data: dict[str, object] = {"method": method, "url": url, "status": status}
        if not stubbed and not unmatched:
            data["passthrough"] = True
        self._timeline.add(self._now(), kind, "caller", **data)

    async def aclose(self) -> None:
        if self._real is not None:
            await self._real.aclose()
