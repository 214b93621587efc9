"""Bounds on one streamed model reply, so a model that trickles words never leaves the caller in
silence (DESIGN §7): nothing speakable for `speechless` seconds (from the request, or since the last
sentence queued for speech), or the reply not finished after `whole` seconds, abandons the reply.

One watchdog task per reply sleeps on the call's clock until the nearer bound; when it passes, it
cancels the task reading the stream, which `expired()` then tells apart from any other cancellation
(a hang-up, a hard stop) — the same shape as the model client's own per-chunk deadline.
"""

from __future__ import annotations

import asyncio

from callgate.telephony.clock import Clock

DEFAULT_SPEECHLESS_SECONDS = 15.0
DEFAULT_REPLY_SECONDS = 45.0


class ReplyDeadline:
    def __init__(self, clock: Clock, *, speechless: float | None, whole: float | None) -> None:
        self._clock = clock
        self._speechless = speechless
        self._whole = whole
        started = clock.monotonic()
        self._started = started
        self._spoke_at = started
        self._task = asyncio.current_task()
        self._watchdog: asyncio.Task[None] | None = None
        self.fired: str | None = None  # why the reply was abandoned
        if (speechless or whole) and self._task is not None:
            self._watchdog = asyncio.create_task(self._watch(), name="reply-deadline")

    def spoke(self) -> None:
        """A sentence of the reply was queued for speech: the speechless bound starts again."""
        self._spoke_at = self._clock.monotonic()

    def _due(self) -> tuple[float, str]:
        bounds: list[tuple[float, str]] = []
        if self._speechless:
            bounds.append(
                (self._spoke_at + self._speechless, f"nothing speakable for {self._speechless:g} s")
            )
        if self._whole:
            bounds.append(
                (self._started + self._whole, f"the reply was not finished after {self._whole:g} s")
            )
        return min(bounds)

    async def _watch(self) -> None:
        while True:
            due, why = self._due()
            left = due - self._clock.monotonic()
            if left <= 1e-9:
                break
            await self._clock.sleep(left)
        self.fired = why
        assert self._task is not None
        self._task.cancel()

    def expired(self) -> bool:
        """After a CancelledError in the reading task: True if it came from this deadline alone."""
        return self.fired is not None and self._task is not None and self._task.uncancel() == 0

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
