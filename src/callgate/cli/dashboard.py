"""`callgate dashboard`: the admin API, dashboard and metrics for a call store, with no calls
being served (`callgate serve --http` serves the same pages next to live calls)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.markup import escape

from callgate.cli.serve import parse_address
from callgate.records.store import StoreError, open_store
from callgate.runtime.live import LiveCallInfo, LiveEvent, LiveFeed
from callgate.runtime.post_call import deliver_in_background
from callgate.server import ServerContext, admin, build_app, metrics
from callgate.server import dashboard as pages
from callgate.server.admin import admin_token
from callgate.swaig.guarded_transport import guarded_client
from callgate.telephony.clock import SystemClock


class NoLiveCalls:
    """The live view of a process that takes no calls: always empty."""

    def __init__(self) -> None:
        self._feed = LiveFeed()

    def live(self) -> list[LiveCallInfo]:
        return []

    async def hangup(self, call_id: str) -> bool:
        return False

    async def transfer(self, call_id: str, destination: str) -> str:
        return "not-found"

    def subscribe(self) -> AsyncIterator[LiveEvent]:
        return self._feed.subscribe()


def dashboard(
    http: Annotated[str, typer.Option("--http", help="Listen address HOST:PORT.")] = "127.0.0.1:8080",
    db: Annotated[
        str | None, typer.Option("--db", help="The store (default: $CALLGATE_DB or the default file).")
    ] = None,
) -> None:
    """Look at the recorded calls in a browser (admin token required), with no calls being served."""
    address = parse_address(http, "--http")
    console = Console(stderr=True, highlight=False)
    env = dict(os.environ)
    try:
        store = open_store(db or env.get("CALLGATE_DB") or None)
    except StoreError as exc:
        console.print(f"[red]error[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    context = ServerContext(live=NoLiveCalls(), store=store, env=env, started_at=SystemClock().time())
    token = admin_token(context)
    if token.source.startswith("generated"):
        console.print(f"admin token (generated, kept in {escape(token.source[10:])}): [bold]{token.value}[/]")
    else:
        console.print(f"[dim]admin token: from {escape(token.source)}[/]")
    console.print(f"dashboard on [bold]http://{address}/[/] — Ctrl-C stops it")

    async def run() -> None:
        app = build_app(context, admin.routes, pages.routes, metrics.routes)
        config = uvicorn.Config(
            app, host=address.host, port=address.port, log_config=None, access_log=False, lifespan="off"
        )
        # Reports go to the document's post_prompt_url: the guarded client resolves, checks and pins.
        async with guarded_client() as client:
            worker = asyncio.create_task(deliver_in_background(store, client, SystemClock()))
            try:
                await uvicorn.Server(config).serve()
            finally:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker

    try:
        asyncio.run(run())
    finally:
        store.close()
