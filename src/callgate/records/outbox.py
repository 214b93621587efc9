"""Delivers queued reports: POST with basic auth and an `Idempotency-Key` header, retries with
exponential backoff, and gives up visibly (`failed`, kept in the store) after `max_attempts`.

A worker leases one report at a time (its own lease, held by the worker's id) and only the
holder settles it, so two workers sharing a store never post a report twice nor count its
attempts twice. If the process dies mid-delivery the lease is taken over (at once on this host,
else when it runs out) and the report goes out again with the same idempotency key; receivers that
honour the key see it once. A URL that can never work (not a URL, an unsupported scheme) fails the
report at once, with the reason. Store calls run off the event loop (`records.async_store`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from callgate.records.async_store import AsyncStore, as_async
from callgate.records.payload import IDEMPOTENCY_HEADER
from callgate.records.store import PENDING, Report, Store, StoreError
from callgate.swaig.guarded_transport import with_guard
from callgate.swaig.urlguard import Guard, parse_problem
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

    @property
    def row_lease(self) -> float:
        """A report's lease always outlasts one attempt (so no one else takes it mid-post)."""
        return max(self.lease, self.timeout + 10.0)

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


def url_problem(url: str) -> str | None:
    """Why `url` can never be posted to (None: it can be tried)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        return f"invalid URL: {parse_problem(exc)}"  # never the part it quotes: maybe a password
    if parsed.scheme not in ("http", "https"):
        return f"unsupported URL scheme {parsed.scheme!r}" if parsed.scheme else "not an http(s) URL"
    if not parsed.host:
        return "invalid URL: no host"
    return None


class DeliveryWorker:
    def __init__(
        self,
        store: Store | AsyncStore,
        http: httpx.AsyncClient,
        clock: Clock,
        policy: RetryPolicy | None = None,
        *,
        on_attempt: Callable[[Attempt], None] | None = None,
        jobs: Callable[[Sequence[str] | None], Awaitable[Any]] | None = None,
    ) -> None:
        self.store = as_async(store)
        # Runs the post-call jobs that are due (`runtime.post_jobs`) before each delivery pass:
        # they are what queue reports.
        self.jobs = jobs
        self.http = http
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.on_attempt = on_attempt

    @property
    def _sync(self) -> Store:
        assert self.store.store is not None
        return self.store.store

    async def deliver_due(self, call_ids: Sequence[str] | None = None) -> list[Attempt]:
        """One pass: every report that is due now gets one attempt, one report at a time."""
        attempts: list[Attempt] = []
        if self.jobs is not None:
            await self.jobs(call_ids)
        if not self.store.usable:
            return attempts
        while True:
            claimed = await self.store.run(
                self._sync.claim_due, self.clock.time(), self.policy.row_lease, limit=1, call_ids=call_ids
            )
            if not claimed:
                return attempts
            attempts.append(await self._attempt(claimed[0]))

    async def run_until_settled(
        self, call_ids: Sequence[str] | None = None, *, max_sleep: float | None = None
    ) -> None:
        """Deliver until no report (of these calls) is pending: each is delivered or has given up.
        Waits out backoff and other workers' leases on the clock; `max_sleep` bounds each wait so
        that a report another worker is sending is seen settled soon after it is."""
        while True:
            await self.deliver_due(call_ids)
            wake = await self._next_wake(call_ids)
            if wake is None:
                return
            delay = max(0.0, wake - self.clock.time())
            await self.clock.sleep(delay if max_sleep is None else min(delay, max_sleep))

    async def run_forever(self, poll: float = 5.0) -> None:
        """A background worker for a long-running process: delivers whatever becomes due."""
        while True:
            try:
                await self.store.replay()  # records spooled while the store was unusable
                await self.deliver_due()
                wake = await self._next_wake(None)
            except StoreError as exc:  # locked, gone: said in one line, tried again later
                log.warning("post-call work waits: %s", exc)
                wake = None
            except Exception:  # nothing must kill the worker; try again later
                log.exception("report delivery pass failed")
                wake = None
            delay = poll if wake is None else min(poll, max(0.0, wake - self.clock.time()))
            await self.clock.sleep(max(delay, 0.05))

    async def _next_wake(self, call_ids: Sequence[str] | None) -> float | None:
        if not self.store.usable:
            return None
        return await self.store.run(self._sync.next_wake, call_ids, include_jobs=self.jobs is not None)

    async def _attempt(self, report: Report) -> Attempt:
        auth = (report.auth_user or "", report.auth_password or "") if report.auth_user else None
        status: int | None = None
        # post_prompt_url is the document's: the private-address guard applies (see NewReport.guard).
        guard = Guard() if report.guard == "strict" else None
        # A URL that can never work gives up at once (with why), like a refused one.
        error = url_problem(report.url)
        permanent = error is not None
        try:
            if error is None and guard is not None and (refused := guard.url_refusal(report.url)):
                error = f"refused: {refused}"
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
        except httpx.InvalidURL as exc:  # the parser quotes the part it rejects: maybe a password
            error = f"malformed URL ({parse_problem(exc)})"
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:  # never out of deliver_due: whatever it was fails this attempt
            log.warning("report for call %s: %s", report.call_id, exc, exc_info=exc)
            error = f"{type(exc).__name__}: {exc}"
        owner = self._sync.owner
        if error is None and status is not None:
            await self.store.run(
                self._sync.mark_delivered, report.idempotency_key, status, self.clock.time(), owner=owner
            )
            result = Attempt(report, True, status, None, False)
        else:
            # Every failure is retried (a 404 may be a deploy in progress); after the last one the
            # report stays in the store as `failed`, never dropped.
            gave_up = permanent or report.attempts >= report.max_attempts
            retry_at = None if gave_up else self.clock.time() + self.policy.delay(report.attempts)
            await self.store.run(
                self._sync.mark_attempt_failed,
                report.idempotency_key,
                status=status,
                error=error or "failed",
                retry_at=retry_at,
                owner=owner,
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
