"""`callgate serve AGENT`: answer real calls (SIP) and serve the HTTP side, until told to drain.

Listeners come up first (nothing loads a model or speech backend before a call needs it). SIGTERM
or SIGINT drains: no new calls (SIP answers 503 to INVITE and OPTIONS, /healthz says draining),
calls in progress end by their own rules, and after `--drain-timeout` seconds the rest are ended
with `worker-shutdown`. A second signal ends them at once. Logs are JSON lines on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import os
import signal
import socket
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Annotated

import httpx
import typer
import uvicorn
from rich.console import Console

from callgate import gc_tuning
from callgate.channels.sip import SipConfig, SipEndpoint
from callgate.channels.sip.config import ProxySettings
from callgate.records.async_store import AsyncStore
from callgate.records.store import Store
from callgate.runtime.call_host import AgentLoader, CallHost, HostServices
from callgate.runtime.logs import configure_json_logging
from callgate.runtime.models import ModelPool
from callgate.runtime.speech_wiring import dialled_leg_preparer, speech_preparer
from callgate.server import RouteProvider, ServerContext, build_app
from callgate.speech.backends import SpeechBackends
from callgate.swaig.guarded_transport import guarded_client
from callgate.swml.errors import DocumentError
from callgate.swml.fetch import CallInfo, is_url
from callgate.swml.loader import LoadResult, fetch_document, load_document
from callgate.telephony.base import Call, EndedReason
from callgate.telephony.clock import SystemClock

log = logging.getLogger("callgate.serve")

EXIT_BAD_INPUT = 2
DEFAULT_SIP = "127.0.0.1:5060"

# The HTTP side's other pieces: each module's `routes(context: ServerContext)`; a module this build
# does not have is skipped.
ROUTE_MODULES = (
    "callgate.server.admin",
    "callgate.server.dashboard",
    "callgate.server.metrics",
    "callgate.server.twilio",
)


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_address(value: str, option: str) -> Address:
    """`HOST:PORT` (`[::1]:5060` for IPv6; a bare `:PORT` means 127.0.0.1)."""
    host, sep, port_text = value.strip().rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise typer.BadParameter(f"{value!r}: expected HOST:PORT, e.g. 127.0.0.1:5060", param_hint=option)
    return Address(host, int(port_text))


def serve(
    agent: Annotated[str, typer.Argument(help="The agent: a SWML file, or an http(s) URL fetched per call.")],
    sip: Annotated[
        str | None, typer.Option("--sip", help="SIP (UDP) listen address HOST:PORT. Default 127.0.0.1:5060.")
    ] = None,
    http: Annotated[
        str | None,
        typer.Option("--http", help="HTTP listen address HOST:PORT (/healthz, admin API, dashboard)."),
    ] = None,
    sip_proxy: Annotated[
        str | None,
        typer.Option("--sip-proxy", help="Outbound proxy or trunk for dialling: sip:user:pass@host:port."),
    ] = None,
    drain_timeout: Annotated[
        float, typer.Option("--drain-timeout", help="Seconds calls may take to end after SIGTERM.", min=0)
    ] = 30.0,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="The URL the world reaches --http at (a tunnel's, e.g. https://x.ngrok.app): Twilio's "
            "webhooks are signed over it. With TWILIO_AUTH_TOKEN set, /twilio/* answers a Twilio number.",
        ),
    ] = None,
) -> None:
    """Answer calls with an agent: SIP and/or HTTP listeners, many calls at once, JSON logs on stderr.

    With neither --sip nor --http, SIP listens on 127.0.0.1:5060; with only --http, there is no SIP.
    """
    if sip is None and http is None:
        sip = DEFAULT_SIP
    sip_address = parse_address(sip, "--sip") if sip is not None else None
    if sip_proxy is not None:
        try:
            ProxySettings.parse(sip_proxy)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--sip-proxy") from exc
    http_address = parse_address(http, "--http") if http is not None else None
    raise typer.Exit(
        serve_agent(
            agent,
            sip=sip_address,
            http=http_address,
            sip_proxy=sip_proxy,
            drain_timeout=drain_timeout,
            public_url=public_url,
        )
    )


def serve_agent(
    agent: str,
    *,
    sip: Address | None = None,
    http: Address | None = None,
    sip_proxy: str | None = None,
    drain_timeout: float = 30.0,
    public_url: str | None = None,
) -> int:
    """Serve `agent` until a signal has drained it; the exit status (2: bad agent or address)."""
    console = Console(stderr=True, highlight=False)
    loader = _agent_loader(agent, console)
    options = _Options(agent, sip, http, sip_proxy, drain_timeout, public_url)
    return asyncio.run(_serve(options, loader))


@dataclass(frozen=True)
class _Options:
    agent: str
    sip: Address | None
    http: Address | None
    sip_proxy: str | None
    drain_timeout: float
    public_url: str | None = None


def _agent_loader(source: str, console: Console) -> Callable[[httpx.AsyncClient], AgentLoader]:
    """A file is loaded (and checked) once, now; a URL is fetched for each call, with its details."""
    if is_url(source):

        def fetching(http: httpx.AsyncClient) -> AgentLoader:
            async def load(call: CallInfo) -> LoadResult:
                return await fetch_document(source, call=call, client=http)

            return load

        return fetching
    try:
        loaded = load_document(source)
    except DocumentError as exc:
        for issue in exc.issues:
            console.print(f"[red]error[/] {issue}")
        raise typer.Exit(EXIT_BAD_INPUT) from exc
    for warning in loaded.warnings:
        console.print(f"[yellow]warning[/] {warning}")

    def loaded_once(http: httpx.AsyncClient) -> AgentLoader:
        async def load(call: CallInfo) -> LoadResult:
            return loaded

        return load

    return loaded_once


def _route_providers() -> list[RouteProvider]:
    providers: list[RouteProvider] = []
    for name in ROUTE_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        providers.append(importlib.import_module(name).routes)
    return providers


class _Server(uvicorn.Server):
    """uvicorn on our loop, without its signal handlers: SIGTERM means drain, which we run."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _listen_tcp(address: Address) -> socket.socket:
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address.host, address.port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def _serve(options: _Options, loader: Callable[[httpx.AsyncClient], AgentLoader]) -> int:
    configure_json_logging(os.environ.get("CALLGATE_LOG_LEVEL", "INFO"))
    clock = SystemClock()
    env = dict(os.environ)
    # Off the event loop; an unusable store spools finished calls until it works again.
    store = await AsyncStore.open(env.get("CALLGATE_DB") or None, env, warn=log.warning)
    models = ModelPool(env, clock, embedded_in_child=True)  # see runtime.models: native libraries
    stack = contextlib.AsyncExitStack()
    try:
        async with stack:
            # The guarded transport resolves, checks and pins what the document's requests reach.
            http = await stack.enter_async_context(guarded_client())
            stack.push_async_callback(models.aclose)
            services = HostServices(clock, http, models.model_for, env, store)
            # Speech backends load nothing until a call needs them.
            backends = SpeechBackends(env)
            host = CallHost(loader(http), services, prepare=speech_preparer(backends, clock, env))
            prepare_leg = dialled_leg_preparer(backends, clock, env)
            return await _run(options, host, prepare_leg, store.store, env, stack, clock.time())
    finally:
        await store.aclose()


async def _run(
    options: _Options,
    host: CallHost,
    prepare_leg: Callable[[Call], None],
    store: Store | None,
    env: dict[str, str],
    stack: contextlib.AsyncExitStack,
    started_at: float,
) -> int:
    endpoint: SipEndpoint | None = None
    if options.sip is not None:
        endpoint = await _start_sip(options, host, prepare_leg)
        if endpoint is None:
            return EXIT_BAD_INPUT
        stack.push_async_callback(endpoint.stop)
    http_task: asyncio.Task[None] | None = None
    server: _Server | None = None
    if options.http is not None:
        try:
            sock = _listen_tcp(options.http)
        except OSError as exc:
            log.error("cannot listen for HTTP on %s: %s", options.http, exc.strerror or exc)
            return EXIT_BAD_INPUT
        context = ServerContext(
            live=host, store=store, env=env, draining=lambda: host.draining, started_at=started_at
        )
        if options.public_url:
            context.extras["public_url"] = options.public_url
        app = build_app(context, *_route_providers())
        twilio = context.extras.get("twilio")
        if twilio is not None:
            # Its REST client and stream handlers outlive the HTTP server otherwise.
            stack.push_async_callback(twilio.stop)
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=5,  # open event streams must not hold the exit
        )
        server = _Server(config)
        http_task = asyncio.create_task(server.serve(sockets=[sock]), name="http")
    await host.start()
    # Start-up is over and a file agent is loaded: keep all of it out of every later collection.
    gc_tuning.tune()
    gc_tuning.settle()
    log.info(
        "serving",
        extra={
            "agent": options.agent,
            "sip": str(options.sip) if options.sip else None,
            "http": str(options.http) if options.http else None,
            "pid": os.getpid(),
        },
    )
    signals = _Signals()
    await signals.first.wait()
    log.info("drain requested (%s)", signals.name)
    if endpoint is not None:
        endpoint.draining = True
    drain = asyncio.create_task(host.drain(options.drain_timeout), name="drain")
    forced = asyncio.create_task(signals.second.wait())
    await asyncio.wait({drain, forced}, return_when=asyncio.FIRST_COMPLETED)
    if not drain.done():
        log.warning("second signal: ending every call now")
        await host.end_all(EndedReason.WORKER_SHUTDOWN, "second-signal")
    stopped = await drain
    forced.cancel()
    signals.restore()
    await host.stop()
    if server is not None and http_task is not None:
        server.should_exit = True
        await http_task
    log.info("stopped", extra={"ended_by_drain": stopped})
    return 0


async def _start_sip(
    options: _Options, host: CallHost, prepare_leg: Callable[[Call], None]
) -> SipEndpoint | None:
    assert options.sip is not None
    config = SipConfig(host=options.sip.host, port=options.sip.port, proxy=options.sip_proxy)
    # Dialled legs (a warm transfer's supervisor, `connect`) get speech like the calls they serve.
    endpoint = SipEndpoint(config, clock=host.clock, on_call=host.accept, prepare_leg=prepare_leg)
    try:
        await endpoint.start()
    except OSError as exc:
        log.error("%s", exc.strerror or exc)
        return None
    host.services.switch = endpoint.switch
    return endpoint


class _Signals:
    """SIGTERM/SIGINT: the first starts the drain, the second ends every call at once."""

    def __init__(self) -> None:
        self.first = asyncio.Event()
        self.second = asyncio.Event()
        self.name = ""
        self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.first.is_set():
            self.second.set()
            return
        self.name = sig.name
        self.first.set()

    def restore(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                self._loop.remove_signal_handler(sig)
