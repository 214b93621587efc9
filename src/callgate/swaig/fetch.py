"""One outbound webhook request with SignalWire-like limits: a total time limit, a body size cap
(the body is streamed and dropped past the cap), no redirects, credentials kept out of URLs.

Nothing here raises for a failed request: every outcome is a `Fetched` with a status or an error.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from callgate.swaig.guarded_transport import AddressRefused, with_guard
from callgate.swaig.urlguard import Guard

USER_AGENT = "callgate-swaig/0.1"


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str = field(repr=False)


def split_credentials(url: str) -> tuple[str, Credentials | None]:
    """`https://user:pass@host/x` → (`https://host/x`, Credentials). Malformed URLs pass through."""
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url, None
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port is not None else "")
    except ValueError:
        return url, None
    creds = Credentials(unquote(parts.username or ""), unquote(parts.password or ""))
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), creds


def safe_url(url: str) -> str:
    """`url` with any embedded credentials removed, for logs."""
    return split_credentials(url)[0]


@dataclass
class Fetched:
    """What came back: `status` and `body` when an answer arrived; `error` when it did not (or was
    cut off). `kind` names the failure: timeout, refused, too_large, transport, blocked."""

    status: int | None = None
    body: bytes = b""
    error: str | None = None
    kind: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


async def fetch(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    json_body: Any = None,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    credentials: Credentials | None = None,
    timeout: float,
    max_bytes: int,
    guard: Guard | None = None,
) -> Fetched:
    """Send one request through `http` (whatever transport it was built with). With `guard`, the
    URL is checked first (no DNS) and the guard travels with the request, so a `GuardedTransport`
    resolves, checks and pins the address it connects to."""
    if guard is not None:
        problem = guard.url_refusal(url)
        if problem is not None:
            return Fetched(error=f"refused: {problem}", kind="blocked")
    send_headers = {"User-Agent": USER_AGENT}
    send_headers.update(headers or {})
    auth = httpx.BasicAuth(credentials.user, credentials.password) if credentials else None
    kwargs: dict[str, Any] = {}
    if form is not None:
        kwargs["data"] = form
    elif json_body is not None:
        kwargs["json"] = json_body
    try:
        async with asyncio.timeout(timeout):
            async with http.stream(
                method,
                url,
                headers=send_headers,
                auth=auth,
                timeout=httpx.Timeout(timeout),
                follow_redirects=False,
                extensions=with_guard(guard),
                **kwargs,
            ) as response:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    return _too_large(response, max_bytes)
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        return _too_large(response, max_bytes)
                return Fetched(status=response.status_code, body=bytes(body), headers=dict(response.headers))
    except AddressRefused as exc:
        return Fetched(error=str(exc), kind="blocked")
    except (TimeoutError, httpx.TimeoutException):
        return Fetched(error=f"no complete answer within {timeout:g} s", kind="timeout")
    except httpx.ConnectError as exc:
        return Fetched(error=f"connection failed ({exc or type(exc).__name__})", kind="refused")
    except httpx.HTTPError as exc:
        return Fetched(error=f"request failed ({type(exc).__name__}: {exc})", kind="transport")
    except (ValueError, OSError) as exc:  # bad URL, socket trouble outside httpx's own errors
        return Fetched(error=f"request failed ({type(exc).__name__}: {exc})", kind="transport")


def _too_large(response: httpx.Response, max_bytes: int) -> Fetched:
    return Fetched(
        status=response.status_code,
        error=f"answer larger than {max_bytes} bytes",
        kind="too_large",
    )
