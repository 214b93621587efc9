"""Prometheus `/metrics` (open, like `/healthz`): what an operator graphs and alerts on.

The figures come from the live event stream every call publishes (`runtime.live`), so nothing in
the engine knows about Prometheus:

- `callgate_calls_total{ended_reason}`, `callgate_active_calls`
- `callgate_transfers_total{outcome}` (completed, failed, refused, cancelled)
- `callgate_model_requests_total`, `callgate_model_errors_total{kind}`,
  `callgate_model_first_token_seconds` (request → first streamed token, from the call's record)
- `callgate_function_calls_total`, `callgate_function_errors_total`, `callgate_function_seconds`
  (SWAIG webhooks and data_map calls, request → result)
- `callgate_turn_seconds` (the caller's final words → the agent's first words)
- `callgate_reports{state}` (post-call reports in the outbox, read at scrape time)

Each app has its own registry, so several servers (or tests) in one process do not mix figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from callgate.records.store import StoreError
from callgate.runtime.live import LiveEvent
from callgate.server.app import ServerContext

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


class _Reports(Collector):
    """Outbox rows by state, counted when Prometheus scrapes."""

    def __init__(self, context: ServerContext) -> None:
        self._context = context

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "callgate_reports", "Post-call reports in the outbox, by state", labels=["state"]
        )
        store = self._context.store
        if store is not None:
            try:
                counts = store.report_counts()
            except StoreError as exc:
                log.warning("metrics: the store cannot be read: %s", exc)
                counts = {}
            for state in ("pending", "delivered", "failed"):
                family.add_metric([state], counts.get(state, 0))
        yield family


class CallMetrics:
    def __init__(self, context: ServerContext) -> None:
        self.context = context
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls = Counter("callgate_calls", "Calls ended, by ended reason", ["ended_reason"], registry=r)
        self.active = Gauge("callgate_active_calls", "Calls in progress", registry=r)
        self.active.set_function(lambda: len(context.live.live()))
        self.transfers = Counter("callgate_transfers", "Transfers by outcome", ["outcome"], registry=r)
        self.model_requests = Counter("callgate_model_requests", "Model requests made", registry=r)
        self.model_errors = Counter(
            "callgate_model_errors", "Model requests that failed", ["kind"], registry=r
        )
        self.first_token = Histogram(
            "callgate_model_first_token_seconds",
            "Model request to its first streamed token",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.functions = Counter("callgate_function_calls", "SWAIG function calls", registry=r)
        self.function_errors = Counter(
            "callgate_function_errors", "SWAIG function calls that failed", registry=r
        )
        self.function_seconds = Histogram(
            "callgate_function_seconds",
            "SWAIG function call to its result",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.turns = Histogram(
            "callgate_turn_seconds",
            "The caller's final words to the agent's first words",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        r.register(_Reports(context))
        # Per call: when the caller last finished speaking / when each function was called.
        self._heard: dict[str, float] = {}
        self._calling: dict[tuple[str, str], float] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._consume(), name="metrics")

    async def _consume(self) -> None:
        async for event in self.context.live.subscribe():
            try:
                await self.observe(event)
            except Exception:  # a figure lost is better than metrics that stop for good
                log.exception("metrics: could not count %s", event.kind)

    async def observe(self, event: LiveEvent) -> None:
        kind, call_id, data = event.kind, event.call_id, event.data
        if kind == "call-ended":
            self.calls.labels(str(data.get("ended_reason") or "unknown")).inc()
            self._forget(call_id)
        elif kind == "transfer-outcome":
            self.transfers.labels(str(data.get("result") or "unknown")).inc()
        elif kind == "model-request":
            self.model_requests.inc()
        elif kind == "model-error":
            self.model_errors.labels(str(data.get("error_kind") or "unknown")).inc()
        elif kind == "function-call" and event.t is not None:
            self.functions.inc()
            self._calling[(call_id, str(data.get("name")))] = event.t
        elif kind == "function-result" and event.t is not None:
            started = self._calling.pop((call_id, str(data.get("name"))), None)
            if started is not None:
                self.function_seconds.observe(max(0.0, event.t - started))
            if data.get("error"):
                self.function_errors.inc()
        elif kind == "caller-said" and event.t is not None:
            self._heard[call_id] = event.t
        elif kind == "say" and event.leg == "caller" and event.t is not None:
            heard = self._heard.pop(call_id, None)
            if heard is not None:
                self.turns.observe(max(0.0, event.t - heard))
        elif kind == "call-recorded":
            await self._record_timings(call_id)

    async def _record_timings(self, call_id: str) -> None:
        store = self.context.store
        if store is None:
            return
        with contextlib.suppress(StoreError):
            record = await asyncio.to_thread(store.get_call, call_id)
            for timing in record.times if record is not None else []:
                if timing.first_token_time is not None:
                    self.first_token.observe(timing.first_token_time)

    def _forget(self, call_id: str) -> None:
        self._heard.pop(call_id, None)
        for key in [key for key in self._calling if key[0] == call_id]:
            del self._calling[key]

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


def routes(context: ServerContext) -> list[BaseRoute]:
    metrics = CallMetrics(context)
    context.extras["metrics"] = metrics
    with contextlib.suppress(RuntimeError):  # no loop yet: started by the first scrape
        metrics.start()

    async def scrape(request: Request) -> Response:
        metrics.start()
        body = await asyncio.to_thread(metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    return [Route("/metrics", scrape, methods=["GET"])]
