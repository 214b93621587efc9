"""A lean HTTP/1.1 transport for httpx, for the many concurrent streams to a model endpoint.

httpcore's pool re-examines every connection — and polls its socket — whenever a request starts or
ends, which is quadratic in the number of open connections: with 500 calls streaming at once it
took most of the process's CPU and held requests back for seconds. Here each origin keeps a stack of
idle connections (LIFO, so the warmest is reused), taken and given back in O(1); connections idle
longer than `keepalive_expiry` are dropped from the cold end as the stack is used.

What it does not do, on purpose: HTTP/2, proxies (`callgate.http_pool` uses httpx's own transport when
a proxy is configured), read timeouts (the model client keeps one deadline per stream). Bodies are
framed by `Transfer-Encoding: chunked`, `Content-Length` or the end of the connection. A reused
connection the server closed while idle is retried once on a fresh one, before anything was read.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator

import httpx

Origin = tuple[str, str, int]
_READ = 65536


class _Connection:
    __slots__ = ("idle_since", "origin", "reader", "writer")

    def __init__(self, origin: Origin, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.origin = origin
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class Http1Transport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        connect_timeout: float = 10.0,
        keepalive_expiry: float = 60.0,
    ) -> None:
        self._ssl = ssl_context
        self._connect_timeout = connect_timeout
        self._expiry = keepalive_expiry
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._closed = False
        self.opened = 0  # connections made so far (tests, benchmarks)

    # ------------------------------------------------------------ connections

    def _take(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.usable() and now - connection.idle_since < self._expiry:
                return connection
            connection.close()
        return None

    def _release(self, connection: _Connection) -> None:
        if self._closed or not connection.usable():
            connection.close()
            return
        now = time.monotonic()
        connection.idle_since = now
        idle = self._idle.setdefault(connection.origin, deque())
        idle.append(connection)
        while idle and (now - idle[0].idle_since >= self._expiry or not idle[0].usable()):
            idle.popleft().close()  # the cold end: long unused, or closed by the server

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        secure = scheme == "https"
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=self._ssl if secure else None, server_hostname=host if secure else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {host}:{port} within {timeout:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        self.opened += 1
        return _Connection(origin, reader, writer)

    # ------------------------------------------------------------ requests

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise httpx.ConnectError("the transport is closed")
        url = request.url
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        body = await request.aread()
        chunked_body = request.headers.get("transfer-encoding", "").lower() == "chunked"
        lines = [b"%s %s HTTP/1.1" % (request.method.encode(), url.raw_path)]
        lines += [b"%s: %s" % (name, value) for name, value in request.headers.raw]
        head = b"\r\n".join(lines) + b"\r\n\r\n"
        if chunked_body:
            body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
        timeouts = request.extensions.get("timeout") or {}
        for attempt in range(2):
            connection = self._take(origin)
            reused = connection is not None
            if connection is None:
                connection = await self._connect(origin, timeouts.get("connect"))
            try:
                connection.writer.write(head + body)
                await connection.writer.drain()
                raw_head = await connection.reader.readuntil(b"\r\n\r\n")
                while raw_head[9:10] == b"1" and raw_head[9:12] != b"101":
                    raw_head = await connection.reader.readuntil(b"\r\n\r\n")  # 100 Continue and such
            except asyncio.IncompleteReadError as exc:
                connection.close()
                if reused and attempt == 0 and not exc.partial:
                    continue  # closed by the server while idle: once more on a fresh connection
                raise httpx.RemoteProtocolError("the server closed the connection, no response") from exc
            except asyncio.LimitOverrunError as exc:
                connection.close()
                raise httpx.RemoteProtocolError("response headers too long") from exc
            except (OSError, asyncio.CancelledError) as exc:
                connection.close()
                if isinstance(exc, asyncio.CancelledError):
                    raise
                if reused and attempt == 0:
                    continue
                raise httpx.ReadError(f"the connection failed: {exc}") from exc
            return self._response(request, connection, raw_head)
        raise httpx.RemoteProtocolError("the server closed the connection without a response")  # unreachable

    def _response(self, request: httpx.Request, connection: _Connection, raw_head: bytes) -> httpx.Response:
        status_line, _, header_block = raw_head[:-4].partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        try:
            version, status = parts[0], int(parts[1])
        except (IndexError, ValueError):
            connection.close()
            raise httpx.RemoteProtocolError(f"not an HTTP response: {status_line[:80]!r}") from None
        reason = parts[2] if len(parts) > 2 else b""
        headers: list[tuple[bytes, bytes]] = []
        chunked = False
        length: int | None = None
        keep = version == b"HTTP/1.1"
        for line in header_block.split(b"\r\n") if header_block else ():
            name, _, value = line.partition(b":")
            name, value = name.strip(), value.strip()
            headers.append((name, value))
            lowered = name.lower()
            if lowered == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lowered == b"content-length":
                with contextlib.suppress(ValueError):
                    length = int(value)
            elif lowered == b"connection":
                keep = keep and b"close" not in value.lower()
        if request.method == "HEAD" or status in (204, 304):
            chunked, length = False, 0
        elif not chunked and length is None:
            keep = False  # the body ends when the connection does
        stream = _Body(self, connection, chunked=chunked, length=length, keep=keep)
        return httpx.Response(
            status,
            headers=headers,
            stream=stream,
            extensions={"http_version": version, "reason_phrase": reason},
        )

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()


class _Body(httpx.AsyncByteStream):
    def __init__(
        self,
        transport: Http1Transport,
        connection: _Connection,
        *,
        chunked: bool,
        length: int | None,
        keep: bool,
    ) -> None:
        self._transport = transport
        self._connection: _Connection | None = connection
        self._chunked = chunked
        self._length = length
        self._keep = keep

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            return
        reader = connection.reader
        try:
            if self._chunked:
                while True:
                    line = await reader.readuntil(b"\n")
                    size = int(line.split(b";", 1)[0].strip(), 16)
                    if size == 0:
                        while (await reader.readuntil(b"\n")).strip():
                            pass  # trailers
                        break
                    data = await reader.readexactly(size + 2)
                    yield data[:-2]
            elif self._length is not None:
                remaining = self._length
                while remaining > 0:
                    data = await reader.read(min(remaining, _READ))
                    if not data:
                        raise asyncio.IncompleteReadError(b"", remaining)
                    remaining -= len(data)
                    yield data
            else:
                while data := await reader.read(_READ):
                    yield data
                self._keep = False
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            self._finish(reuse=False)
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body"
            ) from exc
        except OSError as exc:
            self._finish(reuse=False)
            raise httpx.ReadError(f"the connection failed: {exc}") from exc
        self._finish(reuse=self._keep)

    def _finish(self, *, reuse: bool) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if reuse:
            self._transport._release(connection)
        else:
            connection.close()

    async def aclose(self) -> None:
        self._finish(reuse=False)  # a body not read to its end leaves the connection unusable
