"""Delivers queued reports: POST with basic auth and an `Idempotency-Key` header, retries with
exponential backoff, and gives up visibly (`failed`, kept in the store) after `max_attempts`.

A worker leases a report before posting it. If the process dies mid-delivery the lease runs out
and the next worker (after a restart, or another process sharing the store) sends it again with
the same idempotency key; receivers that honour the key see it once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from callgate.records.payload import IDEMPOTENCY_HEADER
from callgate.records.store import PENDING, Report, Store
from callgate.swaig.guarded_transport import with_guard
from callgate.swaig.urlguard import Guard
from callgate.telephony.clock import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 2.0  # seconds before the first retry
    factor: float = 2.0
    cap: float = 600.0
    max_attempts: int = 8
    timeout: float = 15.0  # per attempt
    lease: float = 60.0  # how long a claimed report is left alone by other workers

    def delay(self, attempts: int) -> float:
        """The wait after the `attempts`-th failed attempt."""
        return float(min(self.cap, self.base * self.factor ** max(0, attempts - 1)))


@dataclass(frozen=True)
class Attempt:
    """What one delivery attempt did (for timelines and logs)."""

    report: Report
    ok: bool
    status: int | None
    error: str | None
    gave_up: bool
    retry_at: float | None = None  # epoch seconds of the next attempt, after a failure


def _accepted(status: int) -> bool:
    return 200 <= status < 300


class DeliveryWorker:
    def __init__(
        self,
        store: Store,
        http: httpx.AsyncClient,
        clock: Clock,
        policy: RetryPolicy | None = None,
        *,
        on_attempt: Callable[[Attempt], None] | None = None,
    ) -> None:
        self.store = store
        self.http = http
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.on_attempt = on_attempt

    async def deliver_due(self, call_ids: Sequence[str] | None = None) -> list[Attempt]:
        """One pass: every report that is due now gets one attempt."""
        attempts: list[Attempt] = []
        while True:
            claimed = self.store.claim_due(self.clock.time(), self.policy.lease, call_ids=call_ids)
            if not claimed:
                return attempts
            for report in claimed:
                attempts.append(await self._attempt(report))

    async def run_until_settled(
        self, call_ids: Sequence[str] | None = None, *, max_sleep: float | None = None
    ) -> None:
        """Deliver until no report (of these calls) is pending: each is delivered or has given up.
        Waits out backoff and other workers' leases on the clock; `max_sleep` bounds each wait so
        that a report another worker is sending is seen settled soon after it is."""
        while True:
            await self.deliver_due(call_ids)
            wake = self.store.next_wake(call_ids)
            if wake is None:
                return
            delay = max(0.0, wake - self.clock.time())
            await self.clock.sleep(delay if max_sleep is None else min(delay, max_sleep))

    async def run_forever(self, poll: float = 5.0) -> None:
        """A background worker for a long-running process: delivers whatever becomes due."""
        while True:
            try:
                await self.deliver_due()
                wake = self.store.next_wake()
            except Exception:  # a store hiccup must not kill the worker; try again later
                log.exception("report delivery pass failed")
                wake = None
            delay = poll if wake is None else min(poll, max(0.0, wake - self.clock.time()))
            await self.clock.sleep(max(delay, 0.05))

    async def _attempt(self, report: Report) -> Attempt:
        auth = (report.auth_user or "", report.auth_password or "") if report.auth_user else None
        status: int | None = None
        # post_prompt_url is the document's: the private-address guard applies (see NewReport.guard).
        guard = Guard() if report.guard == "strict" else None
        error = f"refused: {refused}" if guard and (refused := guard.url_refusal(report.url)) else None
        try:
            if error is None:
                response = await asyncio.wait_for(
                    self.http.post(
                        report.url,
                        json=report.payload,
                        headers={IDEMPOTENCY_HEADER: report.idempotency_key},
                        auth=auth or httpx.USE_CLIENT_DEFAULT,
                        timeout=self.policy.timeout,
                        extensions=with_guard(guard),
                    ),
                    self.policy.timeout + 5,
                )
                status = response.status_code
                if not _accepted(status):
                    error = f"HTTP {status}"
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if error is None and status is not None:
            self.store.mark_delivered(report.idempotency_key, status, self.clock.time())
            result = Attempt(report, True, status, None, False)
        else:
            # Every failure is retried (a 404 may be a deploy in progress); after the last one the
            # report stays in the store as `failed`, never dropped.
            gave_up = report.attempts >= report.max_attempts
            retry_at = None if gave_up else self.clock.time() + self.policy.delay(report.attempts)
            self.store.mark_attempt_failed(
                report.idempotency_key, status=status, error=error or "failed", retry_at=retry_at
            )
            result = Attempt(report, False, status, error, gave_up, retry_at)
            log.info(
                "report for call %s to %s: attempt %d failed (%s)%s",
                report.call_id,
                report.url,
                report.attempts,
                error,
                ", giving up" if gave_up else "",
            )
        if self.on_attempt is not None:
            self.on_attempt(result)
        return result


def pending_count(store: Store, call_ids: Sequence[str] | None = None) -> int:
    return sum(1 for r in store.reports(status=PENDING) if call_ids is None or r.call_id in call_ids)
