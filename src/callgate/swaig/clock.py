"""The wall clock the functions runtime reads (check_time, swaig_log epoch times).

The runtime takes any object with `time()` (seconds since the epoch), so the scenario runner can
pass its virtual clock. `SystemClock` is the default for live calls.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class SystemClock:
    """The machine's clock."""

    def time(self) -> float:
        return time.time()


class FixedClock:
    """A clock stopped at `epoch` until moved; for tests and reproducible runs."""

    def __init__(self, epoch: float) -> None:
        self.epoch = epoch

    def time(self) -> float:
        return self.epoch

    def advance(self, seconds: float) -> None:
        self.epoch += seconds
