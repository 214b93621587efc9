"""The process's HTTP clients: one per model endpoint origin, one for webhooks, shared by every call.

An `httpx.AsyncClient` costs ~0.8 MB and tens of milliseconds to build (its SSL context alone), and
its connection pool only helps if it outlives the call. So calls never build clients: they ask the
pool of the running event loop, `shared_pool()`.

    pool = shared_pool()
    client = pool.model_client("https://api.openai.com/v1")   # one per origin (scheme, host, port)
    http = pool.webhooks()                                    # SWAIG webhooks, documents, reports
    ...
    await pool.aclose()                                       # at shut-down (the host's job)

All clients share one SSL context. The model clients keep as many connections alive as there are
concurrent streams (one HTTP/1.1 connection each, on the lean transport of `callgate.http1`); their
reads have no timeout of their own: the model client keeps one deadline per stream. Clients belong
to an event loop, so each loop has its own pool (a process normally runs one).
"""

from __future__ import annotations

import os
import ssl
import weakref
from asyncio import AbstractEventLoop, get_running_loop
from functools import cache

import httpx

from callgate.http1 import Http1Transport

MODEL_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=60.0)
MODEL_TIMEOUT = httpx.Timeout(connect=10.0, read=None, write=30.0, pool=None)
WEBHOOK_TIMEOUT = httpx.Timeout(30.0)
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@cache
def ssl_context() -> ssl.SSLContext:
    """The one SSL context of the process (certificate verification on, system trust store)."""
    return ssl.create_default_context()


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; the port defaults by scheme."""
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return parsed.scheme, parsed.host, port


def _proxied() -> bool:
    return any(os.environ.get(name) for name in _PROXY_VARIABLES)


def model_http_client() -> httpx.AsyncClient:
    """A client for model streams: the lean HTTP/1.1 transport, or httpx's own behind a proxy."""
    if _proxied():
        return httpx.AsyncClient(verify=ssl_context(), limits=MODEL_LIMITS, timeout=MODEL_TIMEOUT)
    return httpx.AsyncClient(transport=Http1Transport(ssl_context()), timeout=MODEL_TIMEOUT)


class HttpPool:
    def __init__(self) -> None:
        self._models: dict[tuple[str, str, int], httpx.AsyncClient] = {}
        self._webhooks: httpx.AsyncClient | None = None

    def model_client(self, url: str) -> httpx.AsyncClient:
        """The client for a model endpoint's origin, made on first use."""
        key = origin(url)
        client = self._models.get(key)
        if client is None or client.is_closed:
            client = model_http_client()
            self._models[key] = client
        return client

    def webhooks(self) -> httpx.AsyncClient:
        """The client for webhooks (SWAIG, documents, transfer destinations, reports): one for every
        origin, since httpx keeps a connection pool per origin inside it. Redirects are not followed."""
        if self._webhooks is None or self._webhooks.is_closed:
            self._webhooks = httpx.AsyncClient(
                verify=ssl_context(), follow_redirects=False, timeout=WEBHOOK_TIMEOUT
            )
        return self._webhooks

    @property
    def clients(self) -> int:
        return len(self._models) + (self._webhooks is not None)

    async def aclose(self) -> None:
        clients = [*self._models.values(), *([self._webhooks] if self._webhooks else [])]
        self._models.clear()
        self._webhooks = None
        for client in clients:
            await client.aclose()


_pools: weakref.WeakKeyDictionary[AbstractEventLoop, HttpPool] = weakref.WeakKeyDictionary()


def shared_pool() -> HttpPool:
    """The pool of the running event loop (call from async code)."""
    loop = get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        pool = _pools[loop] = HttpPool()
    return pool
