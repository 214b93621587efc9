"""What every channel's leg shares: the leg state machine, the event feed and channel errors.

A leg is RINGING until answered, then ACTIVE; it may go on HOLD and back, be BRIDGED to another
leg (callgate's agents are out of the path from then on) and finally ENDED. Any other move is an
`IllegalLegTransition`, and any operation on an ENDED leg is `CallEnded`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Final

from callgate.telephony.base import CallEnded, CallEvent, SpeechRefused


class LegState(StrEnum):
    RINGING = "ringing"
    ACTIVE = "active"
    HELD = "held"
    BRIDGED = "bridged"
    ENDED = "ended"


TRANSITIONS: Final[dict[LegState, frozenset[LegState]]] = {
    LegState.RINGING: frozenset({LegState.ACTIVE, LegState.ENDED}),
    LegState.ACTIVE: frozenset({LegState.HELD, LegState.BRIDGED, LegState.ENDED}),
    LegState.HELD: frozenset({LegState.ACTIVE, LegState.BRIDGED, LegState.ENDED}),
    LegState.BRIDGED: frozenset({LegState.ENDED}),
    LegState.ENDED: frozenset(),
}


class IllegalLegTransition(RuntimeError):
    """A leg was asked to move to a state it cannot reach from where it is (a caller bug)."""


class HeldError(SpeechRefused):
    """The agent tried to speak to a leg on hold. Held legs hear nothing: this is a caller bug.

    Raised instead of silently dropping the words, so a goodbye said to a held caller shows up in
    tests rather than vanishing.
    """


class BridgedError(SpeechRefused):
    """The agent tried to use a leg that is bridged to another party: callgate is out of the path."""


class LegStateMachine:
    def __init__(self, initial: LegState = LegState.RINGING) -> None:
        self.state = initial

    def move(self, target: LegState) -> None:
        if self.state is LegState.ENDED:
            raise CallEnded("the leg has ended")
        if target not in TRANSITIONS[self.state]:
            raise IllegalLegTransition(f"a {self.state} leg cannot become {target}")
        self.state = target

    def require_usable(self, *, allow_held: bool) -> None:
        """Raise the error for using this leg for audio now, if any."""
        if self.state is LegState.ENDED:
            raise CallEnded("the leg has ended")
        if self.state is LegState.BRIDGED:
            raise BridgedError("the leg is bridged to another party")
        if self.state is LegState.HELD and not allow_held:
            raise HeldError("the leg is on hold")


class _End:
    """Marks the end of the feed."""


_END: Final = _End()


class EventFeed:
    """The far end's events for one consumer; ends after `close()`."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[CallEvent | _End] = asyncio.Queue()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, event: CallEvent) -> bool:
        """Queue an event; False (and dropped) once the feed is closed."""
        if self._closed:
            return False
        self._queue.put_nowait(event)
        return True

    def close(self, *, drop_pending: bool) -> None:
        """End the feed; with drop_pending, events not yet consumed are discarded."""
        if self._closed:
            return
        self._closed = True
        if drop_pending:
            while not self._queue.empty():
                self._queue.get_nowait()
        self._queue.put_nowait(_END)

    async def __aiter__(self) -> AsyncIterator[CallEvent]:
        while True:
            item = await self._queue.get()
            if isinstance(item, _End):
                self._queue.put_nowait(_END)  # later iterators end too
                return
            yield item


class LegIdentity:
    """Who a leg connects and where its state machine stands; shared by every channel's legs."""

    _call_id: str
    _from: str
    _to: str
    _caller_name: str
    _machine: LegStateMachine

    @property
    def call_id(self) -> str:
        return self._call_id

    @property
    def from_number(self) -> str:
        return self._from

    @property
    def to_number(self) -> str:
        return self._to

    @property
    def caller_name(self) -> str:
        return self._caller_name

    @property
    def state(self) -> LegState:
        return self._machine.state

    @property
    def ended(self) -> bool:
        return self._machine.state is LegState.ENDED

    @property
    def held(self) -> bool:
        return self._machine.state is LegState.HELD


def check_bridgeable(a: LegIdentity, b: LegIdentity) -> None:
    """Two distinct legs, both up (active or held), or a clear error."""
    if a is b:
        raise ValueError("cannot bridge a leg to itself")
    for call in (a, b):
        if call.ended:
            raise CallEnded(f"leg {getattr(call, 'leg', call.call_id)} has ended")
        if call.state not in (LegState.ACTIVE, LegState.HELD):
            raise IllegalLegTransition(f"a {call.state} leg cannot be bridged")
