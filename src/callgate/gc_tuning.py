"""Garbage collection for a process that holds many calls.

Python's cyclic collector stops the event loop while it runs, for a time that grows with the number
of tracked objects. After start-up most of them (modules, classes, the parsed agent documents) live
as long as the process, so a full collection re-scans tens of megabytes that can never be garbage:
at 100 calls that was a 100+ ms pause, every caller's audio late by as much.

- `settle()` collects once and freezes what is left (`gc.freeze()`): those objects are never scanned
  again. Call it after start-up and after loading each agent document — when no call is in flight,
  since a frozen object that later becomes cyclic garbage is never collected.
- `tune()` raises the youngest generation's threshold, so the short-lived objects of each turn are
  collected in fewer, still small, passes.
"""

from __future__ import annotations

import gc

THRESHOLDS = (2_000, 5, 100)
"""(young, middle, old), from `benchmarks/turn_overhead.py` at 100–500 calls: a young pass every 2,000
net new container objects instead of 700, a middle pass every 5 young ones, full passes ten
times rarer. Young passes are kept small: what they scan is mostly the in-flight state of every call."""


def tune() -> None:
    gc.set_threshold(*THRESHOLDS)


def settle() -> None:
    """Collect, then freeze every surviving object out of future collections."""
    gc.collect()
    gc.freeze()
