"""Ordered speech on the caller's leg: pronounce rules, end-call phrases, nothing cut off.

Sentences are queued as the model streams and spoken one after another by a single task, so speech
starts before the model has finished, yet the order is fixed and `drain()` returns only once the last
frame of the last sentence has been played — including text another task queued while it waited.

Barge-in: `barge_in()` cuts the sentence playing and drops the rest of the turn's speech, unless the
speech is `protect()`ed — what is said after a turn has decided to hang up or transfer is never cut.
`heard` keeps what the caller heard of the turn, so the history can keep only that.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Callable

from callgate.swml.models import Pronounce
from callgate.telephony.base import Call, CallEnded, SpeaksAhead, SpeechInterrupted, SpeechRefused

log = logging.getLogger(__name__)


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
        on_refused: Callable[[str, str], None] | None = None,
    ) -> None:
        self._call = call
        self._ahead = call if isinstance(call, SpeaksAhead) else None  # audio legs synthesise ahead
        self._pronounce = pronounce
        self._on_spoken = on_spoken
        self._on_refused = on_refused
        # One state for the queue and its worker: the worker only ever stops with the queue empty
        # (no await between the check and `_idle.set()`), so nothing queued is left behind.
        self._queue: deque[str] = deque()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._failed: CallEnded | None = None
        self._error: Exception | None = None  # an unexpected failure of the channel, raised by drain()
        self.spoken: list[str] = []
        self.refused: list[str] = []
        self.heard: list[str] = []  # what the caller heard of this turn (cut sentences: the words played)
        self.queued = 0  # texts accepted by say_soon so far (a turn that queued nothing said nothing)
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
        self.queued += 1
        self._queue.append(text)
        self._idle.clear()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="speaker")
        if self._ahead is not None:
            self._ahead.prefetch_speech(apply_pronounce(text, self._pronounce))

    async def say(self, text: str) -> None:
        """Speak `text` after what is queued, and return when it has finished playing."""
        self.say_soon(text)
        await self.drain()

    async def drain(self) -> None:
        """Wait until everything queued — by any task, before or while waiting — has been played.
        Raises CallEnded if the leg went away."""
        while not self._idle.is_set():
            await self._idle.wait()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._failed is not None:
            raise CallEnded(str(self._failed)) from self._failed

    def cancel(self) -> None:
        """Stop speaking at once and forget what is queued (the call is over or preempted)."""
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()
            self._task = None  # text queued from now on gets a fresh worker, never the dying one
        self._speaking = False
        self._idle.set()

    async def _run(self) -> None:
        try:
            while self._queue:
                text = self._queue.popleft()
                if self._cut and not self._protected:
                    continue  # the caller barged in: the rest of the turn is not said
                await self._speak(text)
                if self._failed is not None:
                    self._queue.clear()
        except Exception as exc:  # not the leg's known failures: drain() raises it (a crash)
            self._error = exc
            self._queue.clear()
        finally:
            # A worker superseded after cancel() leaves the state to the new one.
            if self._task is asyncio.current_task():
                self._speaking = False
                self._idle.set()

    async def _speak(self, text: str) -> None:
        self._speaking = True
        try:
            await self._call.say(apply_pronounce(text, self._pronounce))
        except SpeechInterrupted as exc:
            if exc.heard:
                self.heard.append(exc.heard)
            return
        except CallEnded as exc:
            self._failed = exc
            return
        except SpeechRefused as exc:
            # Held or bridged: the caller cannot hear it, so it was not said — but never silently.
            self.refused.append(text)
            log.info("speech refused (%s): %r", exc, text)
            if self._on_refused is not None:
                self._on_refused(text, str(exc))
            return
        finally:
            self._speaking = False
        self.spoken.append(text)
        self.heard.append(text)
        if self._on_spoken is not None:
            self._on_spoken(text)
