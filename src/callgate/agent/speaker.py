"""Ordered speech on the caller's leg: pronounce rules, end-call phrases, nothing cut off.

Sentences are queued as the model streams and spoken one after another by a single task, so speech
starts before the model has finished, yet the order is fixed and `drain()` returns only once the last
frame of the last sentence has been played.

Barge-in: `barge_in()` cuts the sentence playing and drops the rest of the turn's speech, unless the
speech is `protect()`ed — what is said after a turn has decided to hang up or transfer is never cut.
`heard` keeps what the caller heard of the turn, so the history can keep only that.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from callgate.swml.models import Pronounce
from callgate.telephony.base import Call, CallEnded, SpeechInterrupted, SpeechRefused


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
        self.heard: list[str] = []  # what the caller heard of this turn (cut sentences: the words played)
        self._speaking = False
        self._protected = False
        self._cut = False

    # ------------------------------------------------------------ barge-in

    def begin_turn(self) -> None:
        """A new turn: its speech may be cut again, and nothing of it has been heard yet."""
        self._cut = False
        self._protected = False
        self.heard = []

    def protect(self) -> None:
        """From now on this turn's speech is never cut (the turn decided to end or hand on the call)."""
        self._protected = True

    @property
    def cut(self) -> bool:
        """The caller barged in on this turn: the rest of its speech is dropped."""
        return self._cut

    @property
    def interruptible(self) -> bool:
        return self._speaking and not self._protected

    def barge_in(self) -> bool:
        """The caller talks over the agent: cut the sentence playing, drop the rest. True if it cut."""
        if not self.interruptible:
            return False
        self._cut = True
        self._call.interrupt_speech()
        return True

    def say_soon(self, text: str) -> None:
        """Queue `text` to be spoken after everything queued before it (dropped once barged in)."""
        text = text.strip()
        if not text or (self._cut and not self._protected):
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
            if self._cut and not self._protected:
                continue  # the caller barged in: the rest of the turn is not said
            self._speaking = True
            try:
                await self._call.say(apply_pronounce(text, self._pronounce))
            except SpeechInterrupted as exc:
                if exc.heard:
                    self.heard.append(exc.heard)
                continue
            except CallEnded as exc:
                self._failed = exc
                while not self._queue.empty():
                    self._queue.get_nowait()
                return
            except SpeechRefused:
                # Held or bridged: the caller cannot hear it, so it was not said.
                self.refused.append(text)
                continue
            finally:
                self._speaking = False
            self.spoken.append(text)
            self.heard.append(text)
            if self._on_spoken is not None:
                self._on_spoken(text)
