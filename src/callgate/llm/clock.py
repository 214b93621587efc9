"""The default clock of model clients: the running event loop's own time.

A virtual-time event loop (the `sim` channel's) therefore drives timeouts and back-off too.
"""

from __future__ import annotations

import asyncio


class LoopClock:
    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()
