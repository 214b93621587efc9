"""The HTTP transport that enforces the private-address guard where it cannot be fooled: at connect.

A request carries its `Guard` in the request extensions (`urlguard.GUARD_EXTENSION`); a request
without one gets the transport's `default` (None: not guarded — the model endpoint, a document the
user named). The transport

- refuses a URL the guard refuses on its own (IP literals in any spelling, `localhost` names);
- sends an exempt request (passthrough, the document's own host, `swaig_allow_private_urls`)
  through an ordinary connection pool;
- sends every other request through a pool whose network backend resolves the host name itself,
  refuses the connection if ANY address is internal (`urlguard.address_refusal`), and connects to
  an address it checked. The URL is untouched, so the Host header, TLS SNI and certificate checks
  stay with the original name; a second DNS answer (rebinding) is never asked for.

Redirects carry the request's extensions, so every hop is judged on its own URL. Resolution goes
through the event loop's `getaddrinfo` (an executor job, which a virtual clock holds); tests inject
a resolver. A refusal raises `AddressRefused`, an `httpx.ConnectError`: every caller that handles a
failed connection handles it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

from callgate.swaig.urlguard import GUARD_EXTENSION, Guard, IPAddress, canonical_host, resolved_refusal

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


class AddressRefused(httpx.ConnectError):
    """The guard refused the request's destination; nothing was sent."""


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, via the running loop (a held executor job on a virtual clock)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        text = str(sockaddr[0])
        if len(sockaddr) >= 4 and sockaddr[3]:  # an IPv6 scope id
            text = f"{text.split('%', 1)[0]}%{sockaddr[3]}"
        address = ipaddress.ip_address(text)
        if address not in found:
            found.append(address)
    return found


class _PinningBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, connects to a checked one."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, resolve: Resolver) -> None:
        self._inner = inner
        self._resolve = resolve

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        name = canonical_host(host)
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._resolve(name, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {name} took longer than {timeout:g} s") from exc
        except (OSError, ValueError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {name}: {exc}") from exc
        problem = resolved_refusal(name, addresses)
        if problem is not None:
            raise AddressRefused(f"refused: {problem}")
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("refused: unix sockets are not reachable from an agent document")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that applies each request's `Guard` (see the module docstring)."""

    def __init__(
        self,
        *,
        resolver: Resolver | None = None,
        default: Guard | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        """`resolver` answers name look-ups (default: the loop's getaddrinfo); `network_backend`
        makes the TCP connections to the checked addresses (default: anyio's)."""
        self.default = default
        self._open = httpx.AsyncHTTPTransport()
        self._pinned = httpx.AsyncHTTPTransport()
        # httpx builds its pool without a network-backend hook; this one differs only in the backend.
        self._pinned._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            network_backend=_PinningBackend(
                network_backend or httpcore.AnyIOBackend(), resolver or system_resolver
            ),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        guard = request.extensions.get(GUARD_EXTENSION)
        if not isinstance(guard, Guard):
            guard = self.default
        url = str(request.url)
        if guard is None or guard.exempted(url):
            return await self._open.handle_async_request(request)
        problem = guard.url_refusal(url)
        if problem is not None:
            raise AddressRefused(f"refused: {problem}", request=request)
        try:
            return await self._pinned.handle_async_request(request)
        except AddressRefused as exc:
            raise AddressRefused(str(exc), request=request) from None

    async def aclose(self) -> None:
        await self._open.aclose()
        await self._pinned.aclose()


def guarded_client(
    *, resolver: Resolver | None = None, default: Guard | None = None, **kwargs: Any
) -> httpx.AsyncClient:
    """An AsyncClient for the requests an agent document controls (no redirects unless asked)."""
    kwargs.setdefault("follow_redirects", False)
    return httpx.AsyncClient(transport=GuardedTransport(resolver=resolver, default=default), **kwargs)


def with_guard(guard: Guard | None) -> dict[str, Any]:
    """The request extensions that carry `guard` to the transport."""
    return {} if guard is None else {GUARD_EXTENSION: guard}
