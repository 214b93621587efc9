"""Ordered speech on the caller's leg: pronounce rules, end-call phrases, nothing cut off.

Sentences are queued as the model streams and spoken one after another by a single task, so speech
starts before the model has finished, yet the order is fixed and `drain()` returns only once the last
frame of the last sentence has been played.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from callgate.swml.models import Pronounce
from callgate.telephony.base import Call, CallEnded, SpeechRefused


def apply_pronounce(text: str, rules: list[Pronounce]) -> str:
    """Replace expressions with their phonetic spelling (SignalWire `pronounce`)."""
    for rule in rules:
        flags = re.IGNORECASE if rule.ignore_case else 0
        text = re.sub(re.escape(rule.replace), lambda _m, w=rule.with_: w, text, flags=flags)
    return text


class Speaker:
    def __init__(
        self,
        call: Call,
        pronounce: list[Pronounce],
        on_spoken: Callable[[str], None] | None = None,
    ) -> None:
        self._call = call
        self._pronounce = pronounce
        self._on_spoken = on_spoken
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._failed: BaseException | None = None
        self.spoken: list[str] = []
        self.refused: list[str] = []

    def say_soon(self, text: str) -> None:
        """Queue `text` to be spoken after everything queued before it."""
        text = text.strip()
        if not text:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="speaker")
        self._queue.put_nowait(text)

    async def say(self, text: str) -> None:
        """Speak `text` after what is queued, and return when it has finished playing."""
        self.say_soon(text)
        await self.drain()

    async def drain(self) -> None:
        """Wait until everything queued has been played. Raises CallEnded if the leg went away."""
        if self._task is not None and not self._task.done():
            self._queue.put_nowait(None)
            await asyncio.shield(self._task)
        if self._failed is not None:
            failure, self._failed = self._failed, None
            raise CallEnded(str(failure)) from failure

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
        while not self._queue.empty():
            self._queue.get_nowait()

    async def _run(self) -> None:
        while True:
            text = await self._queue.get()
            if text is None:
                return
            try:
                await self._call.say(apply_pronounce(text, self._pronounce))
            except CallEnded as exc:
                self._failed = exc
                while not self._queue.empty():
                    self._queue.get_nowait()
                return
            except SpeechRefused:
                # Held or bridged: the caller cannot hear it, so it was not said.
                self.refused.append(text)
                continue
            self.spoken.append(text)
            if self._on_spoken is not None:
                self._on_spoken(text)
