"""`build_app`: the one starlette app of `callgate serve`, assembled from route providers.

This module owns `/healthz`. Other pieces contribute their routes as providers — a function taking
the `ServerContext` and returning starlette routes — so the admin API (`/api/*`), the dashboard
(`/`), Prometheus metrics (`/metrics`) and Twilio (`/twilio/*`) plug in without editing this file:

    from callgate.server import ServerContext, build_app
    app = build_app(context, admin.routes, dashboard.routes, metrics.routes)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from callgate.records.store import Store
from callgate.runtime.live import LiveCalls


@dataclass
class ServerContext:
    """What route providers may use: the live calls, the record store, the process's settings."""

    live: LiveCalls
    store: Store | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    # Whether the server is draining (SIGTERM): no new calls, /healthz answers 503.
    draining: Callable[[], bool] = lambda: False
    started_at: float = 0.0  # epoch
    # Anything else a provider wants to share with another (kept by name).
    extras: dict[str, Any] = field(default_factory=dict)


RouteProvider = Callable[[ServerContext], Sequence[BaseRoute]]


def health_routes(context: ServerContext) -> list[BaseRoute]:
    async def healthz(request: Request) -> JSONResponse:
        draining = context.draining()
        body = {
            "status": "draining" if draining else "ok",
            "active_calls": len(context.live.live()),
            "draining": draining,
        }
        # A load balancer stops sending work to a draining worker.
        return JSONResponse(body, status_code=503 if draining else 200)

    return [Route("/healthz", healthz, methods=["GET", "HEAD"])]


def build_app(
    context: ServerContext, *providers: RouteProvider, middleware: Sequence[Middleware] = ()
) -> Starlette:
    """One app: `/healthz`, then each provider's routes in order (the first match wins)."""
    routes: list[BaseRoute] = health_routes(context)
    for provider in providers:
        routes.extend(provider(context))
    app = Starlette(routes=routes, middleware=list(middleware))
    app.state.context = context
    return app
