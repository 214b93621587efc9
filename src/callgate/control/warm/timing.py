"""Deadlines on the call's clock (virtual in scenarios), never on asyncio's own timers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

from callgate.telephony.clock import Clock

T = TypeVar("T")


class Deadline(Exception):
    """The clock ran out before the awaited work finished (the work was cancelled)."""


async def within(clock: Clock, seconds: float, work: Awaitable[T]) -> T:
    """`work`'s result, or Deadline after `seconds` on `clock` (the work is then cancelled)."""
    task: asyncio.Future[T] = asyncio.ensure_future(work)
    timer = asyncio.ensure_future(clock.sleep(max(0.0, seconds)))
    pending: set[asyncio.Future[Any]] = {task, timer}
    try:
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        timer.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise
    if task.done():
        timer.cancel()
        return task.result()
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    raise Deadline(f"not done within {seconds:g}s")
