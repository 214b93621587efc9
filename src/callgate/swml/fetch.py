"""Fetch a SWML document from an http(s) URL the way SignalWire does.

SignalWire POSTs `{call: {call_id, direction, type, from, to, headers, ...}, vars, envs, params}` to
the document URL, with `user:pass@` from the URL sent as basic auth. The signalwire-agents SDK binds
the per-call tokens in the document it renders to that `call_id` and refuses any other, so the caller
must keep the `CallInfo` (see `LoadResult.call`) and send the same call_id in every SWAIG request.

The whole fetch is bounded: `FETCH_TIMEOUT` seconds for everything (not per read: a server dripping
a byte at a time cannot stretch it) and `swml.limits.MAX_DOCUMENT_BYTES` of body (an endless body
stops there). Either is a `DocumentLimitError` naming the URL, its credentials redacted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
from httpx._client import UseClientDefault  # the type of httpx.USE_CLIENT_DEFAULT

from callgate.redact import redact
from callgate.swml.errors import DocumentError, DocumentLimitError, Issue, Severity
from callgate.swml.limits import MAX_DOCUMENT_BYTES

_ACCEPT = "application/json, application/yaml, text/yaml, text/plain;q=0.5, */*;q=0.1"
_USER_AGENT = "callgate (SWML fetch)"
# Seconds for a whole document fetch (connect, headers and body), unless the caller says otherwise.
FETCH_TIMEOUT = 10.0


def _new_call_id() -> str:
    return str(uuid.uuid4())


@dataclass
class CallInfo:
    """The call a document is fetched for; its `call_id` must be reused for the whole call."""

    call_id: str = field(default_factory=_new_call_id)
    from_number: str = ""
    to_number: str = ""
    caller_name: str | None = None
    direction: str = "inbound"
    headers: dict[str, str] = field(default_factory=dict)
    call_type: str = "phone"

    def to_payload(self) -> dict[str, Any]:
        """The `call` object of SignalWire's document request."""
        call: dict[str, Any] = {
            "call_id": self.call_id,
            "direction": self.direction,
            "type": self.call_type,
            "from": self.from_number,
            "to": self.to_number,
            "headers": dict(self.headers),
        }
        if self.caller_name is not None:
            call["caller_id_name"] = self.caller_name
        return call


def request_body(
    call: CallInfo,
    *,
    vars: dict[str, Any] | None = None,
    envs: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body SignalWire POSTs to a document URL."""
    return {"call": call.to_payload(), "vars": vars or {}, "envs": envs or {}, "params": params or {}}


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """`https://u:p@host/x` → (`https://host/x`, ("u", "p")); percent-escapes in u/p are decoded."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    netloc = parts.hostname or ""
    if ":" in netloc:  # an IPv6 literal
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, (unquote(parts.username or ""), unquote(parts.password or ""))


def redact_url(url: str) -> str:
    """The URL with its credentials masked, for messages and logs (`callgate.redact`)."""
    return redact(url)


@dataclass(frozen=True)
class Fetched:
    """A document body as received."""

    text: str
    content_type: str
    url: str  # redacted
    host: str


class _Request:
    """Everything one fetch needs: the request, and the limits on the whole exchange."""

    def __init__(self, url: str, body: dict[str, Any], timeout: float, max_bytes: int) -> None:
        self.clean_url, credentials = split_credentials(url)
        self.password = credentials[1] if credentials else ""
        self.auth: httpx.BasicAuth | UseClientDefault = (
            httpx.BasicAuth(*credentials) if credentials else httpx.USE_CLIENT_DEFAULT
        )
        self.redacted = redact_url(url)
        self.host = (urlsplit(url).hostname or "").lower()
        self.body = body
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.headers = {"Accept": _ACCEPT, "User-Agent": _USER_AGENT}

    async def run(self, client: httpx.AsyncClient, extensions: dict[str, Any] | None) -> Fetched:
        """The whole exchange — connecting, headers, every byte of the body — within `timeout`
        seconds, and the body read only up to `max_bytes` (a slow drip or an endless body stops)."""
        try:
            async with asyncio.timeout(self.timeout):
                async with client.stream(
                    "POST",
                    self.clean_url,
                    json=self.body,
                    auth=self.auth,
                    headers=self.headers,
                    timeout=self.timeout,
                    follow_redirects=True,
                    extensions=extensions,
                ) as response:
                    return self.finish(response, await self._read(response))
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise self.fail(
                f"no complete answer within {self.timeout:g} s (timeout for the whole fetch)", limit=True
            ) from exc
        except httpx.HTTPError as exc:
            raise self.fail(f"could not fetch the document: {type(exc).__name__}: {exc}") from exc

    async def _read(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise self.too_large(int(declared))
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > self.max_bytes:
                raise self.too_large(len(body))
        return bytes(body)

    def too_large(self, size: int) -> DocumentError:
        return self.fail(
            f"the answer is larger than the {self.max_bytes}-byte limit for a document "
            f"({size} bytes or more; stopped reading)",
            limit=True,
        )

    def fail(self, message: str, *, limit: bool = False) -> DocumentError:
        # Credentials never go into the request URL, so messages should not hold them; this is a
        # belt-and-braces scrub (skipped for very short passwords, which would mangle the text).
        if len(self.password) >= 6:
            message = message.replace(self.password, "***")
        issues = [Issue(Severity.ERROR, "", None, message, self.redacted)]
        return DocumentLimitError(issues) if limit else DocumentError(issues)

    def finish(self, response: httpx.Response, content: bytes) -> Fetched:
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not 200 <= response.status_code < 300:
            snippet = content[:200].decode("utf-8", errors="replace").strip()
            detail = f": {snippet}" if snippet else ""
            raise self.fail(
                f"the server answered HTTP {response.status_code} {response.reason_phrase}{detail}"
            )
        try:
            text = content.decode(response.encoding or "utf-8")
        except (UnicodeDecodeError, LookupError) as exc:
            raise self.fail(f"the body is not text ({content_type or 'no content type'}): {exc}") from exc
        return Fetched(text=text, content_type=content_type, url=self.redacted, host=self.host)


async def fetch_text(
    url: str,
    *,
    call: CallInfo,
    timeout: float = FETCH_TIMEOUT,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    vars: dict[str, Any] | None = None,
    envs: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    client: httpx.AsyncClient | None = None,
    extensions: dict[str, Any] | None = None,
) -> Fetched:
    """POST SignalWire's document request to `url` and return the body (raises DocumentError;
    DocumentLimitError when the whole fetch takes more than `timeout` seconds or the body is larger
    than `max_bytes`).

    `client` lets a caller reuse its own connection pool; otherwise a client is made for this fetch.
    `extensions` go with the request (and its redirects) to the client's transport: the
    private-address guard for a document another document names.
    """
    request = _Request(url, request_body(call, vars=vars, envs=envs, params=params), timeout, max_bytes)
    if client is not None:
        return await request.run(client, extensions)
    async with httpx.AsyncClient(timeout=timeout) as own:
        return await request.run(own, extensions)


def fetch_text_sync(
    url: str,
    *,
    call: CallInfo,
    timeout: float = FETCH_TIMEOUT,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    vars: dict[str, Any] | None = None,
    envs: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> Fetched:
    """`fetch_text` for synchronous callers (the CLI, `load_document`), with the same limits."""
    fetch = functools.partial(
        fetch_text,
        url,
        call=call,
        timeout=timeout,
        max_bytes=max_bytes,
        vars=vars,
        envs=envs,
        params=params,
    )
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(fetch())
    # Called from inside an event loop's thread: fetch on a loop of its own in a worker thread.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="swml-fetch") as pool:
        return pool.submit(lambda: asyncio.run(fetch())).result()
