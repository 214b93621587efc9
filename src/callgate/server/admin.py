"""The admin API under `/api/` (issue 14): calls, one call, live calls and their events, per-day
figures, and the actions — redeliver a report, hang up or transfer a live call.

Every endpoint needs the admin token (`server.auth`): 401 without it. Records come out as
`calls export` writes them, so never with a credential. Store work runs off the event loop.

    GET  /api/calls?since=2h&until=…&reason=…&number=…&transfer=…&report=…&limit=50&offset=0
    GET  /api/calls/{call_id}          the record + its reports (attempts, state, last error)
    POST /api/calls/{call_id}/redeliver
    GET  /api/live                     calls in progress
    GET  /api/events                   server-sent events of every live call
    POST /api/live/{call_id}/hangup
    POST /api/live/{call_id}/transfer  {"destination": "+15550002222"}
    GET  /api/stats?days=14            calls per day by ended reason and by transfer outcome
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from typer import BadParameter

from callgate.records.commands import parse_when, report_json, shown_record
from callgate.records.store import Store, StoreError
from callgate.server.app import ServerContext
from callgate.server.auth import AdminToken, load_admin_token

log = logging.getLogger(__name__)
T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]

MAX_LIMIT = 500
KEEPALIVE_SECONDS = 15.0


def admin_token(context: ServerContext) -> AdminToken:
    """One token per app, shared by the API and the dashboard (kept in the context's extras)."""
    token = context.extras.get("admin_token")
    if not isinstance(token, AdminToken):
        token = load_admin_token(context.env)
        context.extras["admin_token"] = token
    return token


def guarded(token: AdminToken, handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        if not token.allows(request):
            return JSONResponse(
                {"error": "unauthorized: send Authorization: Bearer <admin token>"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="callgate"'},
            )
        return await handler(request)

    return endpoint


async def off_loop(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Store work on a worker thread: a slow or locked database never stalls live calls."""
    return await asyncio.to_thread(function, *args, **kwargs)


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    value = int(raw)  # ValueError → 400 by the caller
    return max(low, min(high, value))


class CallsQuery:
    """The call-list filters, from query parameters (shared with the dashboard's list page)."""

    def __init__(self, request: Request, now: float) -> None:
        params = request.query_params
        self.since = params.get("since") or None
        self.until = params.get("until") or None
        self.reason = params.get("reason") or None
        self.number = params.get("number") or None
        self.transfer = params.get("transfer") or None
        self.report = params.get("report") or None
        self.limit = _int(request, "limit", 50, 1, MAX_LIMIT)
        self.offset = _int(request, "offset", 0, 0, 10**9)
        self.since_us = parse_when(self.since, now) if self.since else None
        self.until_us = parse_when(self.until, now) if self.until else None

    def run(self, store: Store) -> list[dict[str, Any]]:
        rows = store.list_calls(
            since_us=self.since_us,
            until_us=self.until_us,
            ended_reason=self.reason,
            number=self.number,
            transfer_result=self.transfer,
            report_status=self.report,
            limit=self.limit,
            offset=self.offset,
        )
        return [
            {
                "call_id": row.call_id,
                "started_at": row.started_us / 1_000_000,
                "ended_at": row.ended_us / 1_000_000 if row.ended_us else None,
                "from": row.caller,
                "to": row.callee,
                "ended_reason": row.ended_reason,
                "transfer": row.transfer_result,
                "report": row.report_status,
            }
            for row in rows
        ]


def call_json(store: Store, call_id: str) -> dict[str, Any] | None:
    record = store.get_call(call_id)
    if record is None:
        return None
    return {
        **shown_record(record).model_dump(mode="json"),
        "reports": [report_json(report) for report in store.reports(record.call_id)],
    }


def day_stats(store: Store, days: int, now: float) -> dict[str, Any]:
    """Calls per UTC day for the last `days` days, by ended reason and by transfer outcome."""
    today = datetime.fromtimestamp(now, UTC).date()
    first = today - timedelta(days=days - 1)
    since_us = int(datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp() * 1_000_000)
    rows = store.day_counts(since_us)
    by_day: dict[str, dict[str, Any]] = {
        (first + timedelta(days=i)).isoformat(): {"calls": 0, "ended_reason": {}, "transfer": {}}
        for i in range(days)
    }
    for day, reason, transfer, count in rows:
        entry = by_day.get(day)
        if entry is None:
            continue
        entry["calls"] += count
        reasons = entry["ended_reason"]
        reasons[reason or "unknown"] = reasons.get(reason or "unknown", 0) + count
        if transfer:
            entry["transfer"][transfer] = entry["transfer"].get(transfer, 0) + count
    return {"days": [{"day": day, **entry} for day, entry in by_day.items()]}


async def sse(context: ServerContext, request: Request) -> AsyncIterator[bytes]:
    """Live events as server-sent events; a comment line now and then keeps proxies from closing."""
    yield b": callgate live events\n\n"
    stream = context.live.subscribe()
    pending: asyncio.Task[Any] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(stream))
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_SECONDS)
            if await request.is_disconnected():
                return
            if not done:
                yield b": keep-alive\n\n"
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            payload = json.dumps(event.to_dict(), ensure_ascii=False, default=str)
            yield f"event: {event.kind}\ndata: {payload}\n\n".encode()
    finally:
        if pending is not None:
            pending.cancel()
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


def routes(context: ServerContext) -> list[BaseRoute]:
    token = admin_token(context)
    if token.source.startswith("generated"):
        # Printed once, the first time: afterwards it is read from its file (never logged again).
        log.warning(
            "admin token generated: %s (kept in %s; set CALLGATE_ADMIN_TOKEN to choose your own)",
            token.value,
            token.source.removeprefix("generated "),
        )
    clock = context.extras.get("clock")
    now: Callable[[], float] = getattr(clock, "time", None) or (lambda: datetime.now(UTC).timestamp())

    def store_or_503() -> Store | JSONResponse:
        if context.store is None:
            return _error("call records are off (no usable store)", 503)
        return context.store

    async def list_calls(request: Request) -> Response:
        store = store_or_503()
        if isinstance(store, JSONResponse):
            return store
        try:
            query = CallsQuery(request, now())
        except (ValueError, BadParameter) as exc:
            return _error(f"bad query: {exc}", 400)
        try:
            calls = await off_loop(query.run, store)
        except StoreError as exc:
            return _error(str(exc), 503)
        return JSONResponse({"calls": calls, "limit": query.limit, "offset": query.offset})

    async def one_call(request: Request) -> Response:
        store = store_or_503()
        if isinstance(store, JSONResponse):
            return store
        try:
            found = await off_loop(call_json, store, request.path_params["call_id"])
        except StoreError as exc:
            return _error(str(exc), 503)
        return JSONResponse(found) if found is not None else _error("no such call", 404)

    async def redeliver(request: Request) -> Response:
        store = store_or_503()
        if isinstance(store, JSONResponse):
            return store
        call_id = request.path_params["call_id"]
        record = await off_loop(store.get_call, call_id)
        if record is None:
            return _error("no such call", 404)
        # The serving process's outbox worker sends it within its poll interval.
        queued = await off_loop(store.retry_failed, now(), record.call_id)
        return JSONResponse({"call_id": record.call_id, "requeued": queued})

    async def live(request: Request) -> Response:
        return JSONResponse({"calls": [info.to_dict() for info in context.live.live()]})

    async def events(request: Request) -> Response:
        return StreamingResponse(
            sse(context, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def hangup(request: Request) -> Response:
        ended = await context.live.hangup(request.path_params["call_id"])
        return JSONResponse({"hung_up": ended}, status_code=200 if ended else 404)

    async def transfer(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error('send JSON: {"destination": "+15550002222"}', 400)
        destination = body.get("destination") if isinstance(body, dict) else None
        if not isinstance(destination, str) or not destination.strip():
            return _error("destination is required", 400)
        outcome = await context.live.transfer(request.path_params["call_id"], destination.strip())
        status = 404 if outcome == "not-found" else 200
        return JSONResponse({"outcome": outcome}, status_code=status)

    async def stats(request: Request) -> Response:
        store = store_or_503()
        if isinstance(store, JSONResponse):
            return store
        try:
            days = _int(request, "days", 14, 1, 366)
        except ValueError as exc:
            return _error(f"bad query: {exc}", 400)
        return JSONResponse(await off_loop(day_stats, store, days, now()))

    def get(path: str, handler: Handler) -> Route:
        return Route(path, guarded(token, handler), methods=["GET"])

    def post(path: str, handler: Handler) -> Route:
        return Route(path, guarded(token, handler), methods=["POST"])

    return [
        get("/api/calls", list_calls),
        get("/api/calls/{call_id}", one_call),
        post("/api/calls/{call_id}/redeliver", redeliver),
        get("/api/live", live),
        get("/api/events", events),
        post("/api/live/{call_id}/hangup", hangup),
        post("/api/live/{call_id}/transfer", transfer),
        get("/api/stats", stats),
    ]
