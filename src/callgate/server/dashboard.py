"""The web dashboard (issue 14): server-rendered pages, no build step, a little plain JavaScript.

    /login            the admin token, once; a session cookie (HttpOnly, SameSite=Strict) after
    /                 calls with filters, per-day charts, live calls (server-sent events) with
                      hang-up and transfer buttons
    /calls/{call_id}  one call: transcript as a chat, timeline to scale, functions, transfers,
                      the post-call report and its attempts (redeliver when it failed)

Pages read through the same code as the admin API (`server.admin`); actions call the API with the
session cookie. Without a session every page redirects to /login.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from typer import BadParameter

from callgate.llm.commands import spoken_text
from callgate.records.model import CallRecord
from callgate.records.store import StoreError
from callgate.server.admin import CallsQuery, admin_token, call_json, day_stats, off_loop
from callgate.server.app import ServerContext
from callgate.server.auth import SESSION_COOKIE
from callgate.server.timeline_view import ROWS, build_view

TEMPLATES = Path(__file__).parent / "templates"
ENDED_REASONS = (
    "assistant-ended-call",
    "assistant-said-end-call-phrase",
    "silence-timed-out",
    "exceeded-max-duration",
    "customer-ended-call",
    "assistant-forwarded-call",
    "pipeline-error",
    "manually-canceled",
)
TRANSFER_RESULTS = ("completed", "failed", "refused", "cancelled")
REPORT_STATES = ("pending", "delivered", "failed", "none")
COLOURS = {
    "assistant-ended-call": "#2f855a",
    "assistant-said-end-call-phrase": "#38a169",
    "silence-timed-out": "#d69e2e",
    "exceeded-max-duration": "#dd6b20",
    "customer-ended-call": "#3182ce",
    "assistant-forwarded-call": "#805ad5",
    "pipeline-error": "#e53e3e",
    "completed": "#2f855a",
    "failed": "#e53e3e",
    "refused": "#dd6b20",
    "cancelled": "#718096",
}


def _when(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))
    env.filters["when"] = _when
    env.filters["us_when"] = lambda us: _when(us / 1_000_000 if us else None)
    env.filters["tojson_compact"] = lambda value: json.dumps(value, ensure_ascii=False)
    env.globals["colour"] = lambda key: COLOURS.get(str(key), "#a0aec0")
    return env


def transcript(record: CallRecord) -> list[dict[str, Any]]:
    """What the caller heard and said, as chat bubbles; tool calls and results as small notes."""
    bubbles: list[dict[str, Any]] = []
    start = record.call_start_date
    for message in record.raw_call_log or record.call_log:
        role, content = message.get("role"), message.get("content")
        stamp = message.get("timestamp")
        at = max(0.0, (stamp - start) / 1_000_000) if isinstance(stamp, int | float) and start else None
        if role == "user" and content:
            bubbles.append({"who": "caller", "text": content, "t": at})
        elif role == "assistant":
            if message.get("barge_in"):
                # Barge-in: the reply was cut; this is what the caller heard of it.
                bubbles.append(
                    {"who": "note", "text": f"cut by the caller — heard: {content or '(nothing)'}", "t": at}
                )
            elif content and spoken_text(str(content)):
                bubbles.append({"who": "agent", "text": spoken_text(str(content)), "t": at})
            for call in message.get("tool_calls") or []:
                function = call.get("function", {})
                bubbles.append(
                    {
                        "who": "tool",
                        "text": f"{function.get('name')}({function.get('arguments', '')})",
                        "t": at,
                    }
                )
        elif role == "tool" and content:
            bubbles.append({"who": "tool", "text": f"← {content}", "t": at})
    return bubbles


def chart(days: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Stacked bars per day for `key` (ended_reason or transfer)."""
    labels = sorted({label for day in days for label in day[key]})
    peak = max([sum(day[key].values()) for day in days] + [1])
    bars = []
    for index, day in enumerate(days):
        y = 0.0
        stack = []
        for label in labels:
            count = day[key].get(label, 0)
            if count:
                height = 100.0 * count / peak
                stack.append({"label": label, "count": count, "y": 100.0 - y - height, "height": height})
                y += height
        bars.append({"x": index, "day": day["day"], "stack": stack, "total": sum(day[key].values())})
    return {"labels": labels, "bars": bars, "width": len(days)}


def routes(context: ServerContext) -> list[BaseRoute]:
    token = admin_token(context)
    env = _environment()

    def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**values), status_code=status)

    def to_login(request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)

    async def login(request: Request) -> Response:
        error = ""
        target = request.query_params.get("next") or "/"
        if not target.startswith("/") or target.startswith("//"):
            target = "/"  # never redirect off this site
        if request.method == "POST":
            form = await request.form()
            offered = form.get("token")
            if isinstance(offered, str) and token.matches(offered.strip()):
                response = RedirectResponse(target, status_code=303)
                response.set_cookie(
                    SESSION_COOKIE,
                    token.session_value(),
                    httponly=True,
                    samesite="strict",
                    secure=request.url.scheme == "https",
                    path="/",
                )
                return response
            error = "That is not the admin token."
        return page("login.html", status=401 if error else 200, error=error, next=target)

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def calls(request: Request) -> Response:
        if not token.allows(request):
            return to_login(request)
        now = datetime.now(UTC).timestamp()
        error = ""
        rows: list[dict[str, Any]] = []
        stats: dict[str, Any] = {"days": []}
        query: CallsQuery | None = None
        try:
            query = CallsQuery(request, now)
        except (ValueError, BadParameter) as exc:
            error = f"bad filter: {exc}"
        if context.store is None:
            error = error or "Call records are off: no usable store."
        elif query is not None:
            try:
                rows = await off_loop(query.run, context.store)
                stats = await off_loop(day_stats, context.store, 14, now)
            except StoreError as exc:
                error = str(exc)
        filters = dict(request.query_params)
        next_page = None
        if query is not None and len(rows) == query.limit:
            next_page = "/?" + urlencode({**filters, "offset": query.offset + query.limit})
        return page(
            "calls.html",
            rows=rows,
            error=error,
            filters=filters,
            reasons=ENDED_REASONS,
            transfers=TRANSFER_RESULTS,
            reports=REPORT_STATES,
            live=[info.to_dict() for info in context.live.live()],
            reason_chart=chart(stats["days"], "ended_reason"),
            transfer_chart=chart(stats["days"], "transfer"),
            next_page=next_page,
        )

    async def one_call(request: Request) -> Response:
        if not token.allows(request):
            return to_login(request)
        if context.store is None:
            return page("call.html", status=503, error="Call records are off: no usable store.", call=None)
        call_id = request.path_params["call_id"]
        try:
            found = await off_loop(call_json, context.store, call_id)
        except StoreError as exc:
            return page("call.html", status=503, error=str(exc), call=None)
        if found is None:
            return page("call.html", status=404, error=f"No call {call_id}.", call=None)
        record = CallRecord.model_validate({k: v for k, v in found.items() if k != "reports"})
        view = build_view(record)
        return page(
            "call.html",
            error="",
            call=found,
            record=record,
            bubbles=transcript(record),
            view=view,
            rows=ROWS,
            reports=found["reports"],
        )

    return [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["GET", "POST"]),
        Route("/", calls, methods=["GET"]),
        Route("/calls/{call_id}", one_call, methods=["GET"]),
    ]
