"""Sentences synthesised while earlier ones play (issue 9 item 3): the first audio frame of a reply
waits only for its first sentence, and no sentence waits for its own synthesis after the one before.

The agent's speaker announces each sentence as it is queued (`Call.prefetch_speech`, where a leg has
it); the leg starts synthesising it at once, one sentence at a time in order, and its `say()` takes
the audio already made. A sentence never said (barge-in dropped it, the leg ended) is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Synthesize = Callable[[str], Awaitable[bytes]]

MAX_AHEAD = 8  # sentences synthesised ahead of the one playing, at most


class SpeechAhead:
    """One leg's sentences synthesised ahead of their turn, keyed by their text."""

    def __init__(self) -> None:
        self._ready: dict[str, asyncio.Task[bytes]] = {}
        # Bumped by clear(): a say() whose audio was still being made when the turn was cut sees it
        # changed once its audio is ready, and plays none of it.
        self.clears = 0
        self._one_at_a_time = asyncio.Lock()  # e.g. one espeak-ng process per leg at a time

    def start(self, text: str, synthesize: Synthesize) -> None:
        """Begin synthesising `text` (after the sentences started before it)."""
        if text in self._ready:
            return
        if len(self._ready) >= MAX_AHEAD:  # stale: refused while held, say() never came
            oldest = next(iter(self._ready))
            self._ready.pop(oldest).cancel()
        task = asyncio.ensure_future(self._in_turn(synthesize, text))
        task.add_done_callback(_retrieve)
        self._ready[text] = task

    async def take(self, text: str, synthesize: Synthesize) -> bytes:
        """`text`'s audio: the one synthesised ahead if there is one, else synthesised now."""
        task = self._ready.pop(text, None)
        if task is None:
            return await self._in_turn(synthesize, text)
        return await task

    def clear(self) -> None:
        """Drop what was synthesised ahead (barge-in cut the turn, the leg ended)."""
        self.clears += 1
        ready, self._ready = self._ready, {}
        for task in ready.values():
            task.cancel()

    async def _in_turn(self, synthesize: Synthesize, text: str) -> bytes:
        async with self._one_at_a_time:
            return await synthesize(text)


def _retrieve(task: asyncio.Task[bytes]) -> None:
    """A failure is re-raised by `take()`; an untaken one must not be logged as never retrieved."""
    if not task.cancelled():
        task.exception()
