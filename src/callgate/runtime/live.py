"""The live-calls view a server exposes (admin API, dashboard, metrics): what is up, and its events.

`CallHost` implements `LiveCalls`; HTTP code programs against the protocol only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class LiveCallInfo:
    """One call in progress. `started_at` is epoch seconds; `state` a `CallState` value
    (`ringing`, `active`, `held`, `transferring`, `ending`, `ended`); `legs` counts the caller's leg
    and any other party dialled for it (a warm transfer's supervisor)."""

    call_id: str
    from_number: str
    to_number: str
    caller_name: str
    started_at: float
    state: str
    legs: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "from": self.from_number,
            "to": self.to_number,
            "caller_name": self.caller_name,
            "started_at": self.started_at,
            "state": self.state,
            "legs": self.legs,
        }


@dataclass(frozen=True)
class LiveEvent:
    """Something that happened on a live call, as it happened.

    `kind`: `call-started`, `call-ended` (data: ended_reason), `call-recorded` (data: report status),
    or a timeline kind (`say`, `caller-says`, `transfer`, `hangup`, …) with its timeline data.
    `at` is epoch seconds; `t` seconds since the call started (timeline events)."""

    kind: str
    call_id: str
    at: float
    t: float | None = None
    leg: str = "caller"
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "call_id": self.call_id, "at": self.at, "leg": self.leg}
        if self.t is not None:
            out["t"] = self.t
        out["data"] = self.data
        return out


class LiveCalls(Protocol):
    def live(self) -> list[LiveCallInfo]:
        """The calls in progress, oldest first."""
        ...

    async def hangup(self, call_id: str) -> bool:
        """End a call now (ended reason `manually-canceled`); False if no such call is up."""
        ...

    async def transfer(self, call_id: str, destination: str) -> str:
        """Blind-transfer a call (the document's destination policy applies); the outcome as text:
        `completed`, `failed: busy`, `refused: …`, `not-found`."""
        ...

    def subscribe(self) -> AsyncIterator[LiveEvent]:
        """Every event of every call from now on, until the consumer stops iterating."""
        ...


class Subscription:
    """One subscriber's events, registered from creation on (nothing published after
    `subscribe()` returns is missed). `aclose()` (or leaving `async for`) unregisters it."""

    def __init__(self, feed: LiveFeed, backlog: int) -> None:
        self._feed = feed
        self.queue: asyncio.Queue[LiveEvent] = asyncio.Queue(backlog)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> LiveEvent:
        if self not in self._feed._subscriptions:
            raise StopAsyncIteration
        return await self.queue.get()

    async def aclose(self) -> None:
        self._feed._subscriptions.discard(self)


class LiveFeed:
    """Fan-out of live events to any number of subscribers. A subscriber that falls more than
    `backlog` events behind loses the oldest ones (a slow browser never slows a call)."""

    def __init__(self, backlog: int = 1000) -> None:
        self._backlog = backlog
        self._subscriptions: set[Subscription] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def publish(self, event: LiveEvent) -> None:
        for subscription in self._subscriptions:
            queue = subscription.queue
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self, self._backlog)
        self._subscriptions.add(subscription)
        return subscription
