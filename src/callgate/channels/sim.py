"""The in-memory `sim` channel: call legs and a switch driven by a scenario, on a clock.

Nothing here makes a sound; instead every operation takes the time it would take live, on the
clock it is given (a virtual one in scenarios), and is recorded in a shared Timeline. Agent speech
is kept as Utterances with when it started and finished, so "the goodbye finished before the
hang-up" can be checked.

Choices worth knowing:
- `say()` lasts len(words) / (words_per_minute / 60) seconds (150 wpm → 2.5 words/s), at least
  0.3 s. If the leg ends, goes on hold or is bridged while speaking, the words stop there: the
  Utterance keeps only the words heard, is marked `cut`, and say raises CallEnded / HeldError /
  BridgedError. Cancelling a say (barge-in) records the cut the same way.
- Speaking to a held leg raises `HeldError` (a held caller hears nothing; dropping the words
  silently would hide a bug). `play()` works while held: that is how hold music is played.
- Caller speech and DTMF injected while the leg is on hold (or bridged) are dropped and recorded
  as such: there is no recognition on a held leg. The caller can always hang up.
- The caller leg starts RINGING; `answer()` makes it ACTIVE (any audio operation answers it
  implicitly, recorded as such).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from callgate.channels.legs import (
    BridgedError,
    EventFeed,
    HeldError,
    IllegalLegTransition,
    LegIdentity,
    LegState,
    LegStateMachine,
    check_bridgeable,
)
from callgate.durations import Duration
from callgate.swaig.urlguard import Guard
from callgate.telephony.base import (
    CallEnded,
    CallerSpeech,
    CallEvent,
    Destination,
    DialFailed,
    Dtmf,
    EndedReason,
    MediaTimeout,
    RemoteHangup,
    SpeechInterrupted,
    SpeechStarted,
    destination_key,
)
from callgate.telephony.clock import Clock
from callgate.timeline import Timeline, Utterance

__all__ = [
    "BridgedError",
    "HeldError",
    "LegSpec",
    "SimCall",
    "SimPlayback",
    "SimSwitch",
    "SimWorld",
    "speech_seconds",
]

WORDS_PER_MINUTE = 150.0
MIN_SAY_SECONDS = 0.3
PLAY_SECONDS = 2.0  # how long a non-looping play() lasts
TRANSFER_TIMEOUT = 30.0  # how long a blind transfer rings the destination
_DTMF = re.compile(r"^[0-9*#A-Da-dwW]+$")
_ids = itertools.count(1)


def speech_seconds(text: str, words_per_minute: float = WORDS_PER_MINUTE) -> float:
    """How long speaking `text` takes on the sim channel."""
    words = len(text.split())
    return max(MIN_SAY_SECONDS, words / (words_per_minute / 60.0))


class LegSpec(BaseModel):
    """A party the sim switch can reach (scenario `legs:` entries)."""

    model_config = ConfigDict(extra="forbid")

    answer: bool | Literal["busy", "reject"] = True
    after: Duration = 0.0  # how long it rings before answering (or failing)
    turns: list[Any] = Field(default_factory=list)  # what this party says; run by the scenario runner

    @field_validator("answer", mode="before")
    @classmethod
    def _answer(cls, value: object) -> object:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"true", "false", "busy", "reject"}:
            word = value.strip().lower()
            return {"true": True, "false": False}.get(word, word)
        raise ValueError(f'answer must be true, false, "busy" or "reject", not {value!r}')


class _Shared:
    """What the legs of one simulated call share: clock, timeline, utterances and time zero."""

    def __init__(
        self,
        clock: Clock,
        timeline: Timeline | None,
        utterances: list[Utterance] | None,
        started_at: float | None,
    ) -> None:
        self.clock = clock
        self.timeline = timeline if timeline is not None else Timeline()
        self.utterances = utterances if utterances is not None else []
        self.started_at = clock.monotonic() if started_at is None else started_at

    def now(self) -> float:
        return self.clock.monotonic() - self.started_at


async def _first(clock: Clock, seconds: float | None, *events: asyncio.Event) -> bool:
    """Wait `seconds` on the clock (forever if None) unless an event is set first.

    True if the time ran out, False if an event came first.
    """
    if any(event.is_set() for event in events):
        return False
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    sleeper = asyncio.ensure_future(clock.sleep(seconds)) if seconds is not None else None
    pending = [*waiters, *([sleeper] if sleeper is not None else [])]
    try:
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return sleeper is not None and sleeper.done() and not sleeper.cancelled() and sleeper.exception() is None


class SimPlayback:
    """A running play(): non-looping ones last PLAY_SECONDS, looping ones until stopped."""

    def __init__(self, call: SimCall, source: str, loop: bool, seconds: float) -> None:
        self._call = call
        self.source = source
        self.loop = loop
        self._stopped = asyncio.Event()
        self.how: str | None = None  # finished | stopped | call-ended
        self._task = asyncio.ensure_future(self._run(None if loop else seconds))

    async def _run(self, seconds: float | None) -> None:
        finished = await _first(self._call._shared.clock, seconds, self._stopped, self._call._ended_event)
        if finished:
            self.how = "finished"
        elif self._stopped.is_set():
            self.how = "stopped"
        else:
            self.how = "call-ended"
        self._call._note("play-end", source=self.source, how=self.how)

    @property
    def done(self) -> bool:
        return self._task.done()

    async def stop(self) -> None:
        self._stopped.set()
        await asyncio.shield(self._task)

    async def wait(self) -> None:
        await asyncio.shield(self._task)


class SimCall(LegIdentity):
    """One leg of a simulated call (the Call protocol), plus the driver's side of it."""

    def __init__(
        self,
        *,
        clock: Clock,
        timeline: Timeline | None = None,
        leg: str = "caller",
        from_number: str = "+15551230000",
        to_number: str = "+15559870000",
        caller_name: str = "",
        utterances: list[Utterance] | None = None,
        switch: SimSwitch | None = None,
        started_at: float | None = None,
        answered: bool = False,
        words_per_minute: float = WORDS_PER_MINUTE,
        play_seconds: float = PLAY_SECONDS,
        transfer_timeout: float = TRANSFER_TIMEOUT,
        call_id: str | None = None,
    ) -> None:
        if words_per_minute <= 0:
            raise ValueError("words_per_minute must be positive")
        self._shared = _Shared(clock, timeline, utterances, started_at)
        self.leg = leg
        self._call_id = call_id or f"sim-{next(_ids)}-{leg}"
        self._from = from_number
        self._to = to_number
        self._caller_name = caller_name
        self.switch = switch
        self.words_per_minute = words_per_minute
        self.play_seconds = play_seconds
        self.transfer_timeout = transfer_timeout
        self._machine = LegStateMachine(LegState.ACTIVE if answered else LegState.RINGING)
        self._feed = EventFeed()
        self._ended_event = asyncio.Event()
        self._interrupt = asyncio.Event()  # set when the leg stops being speakable (hold, bridge, end)
        self._barge: asyncio.Event | None = None  # set by interrupt_speech() while a say() runs
        self.ended_reason: str | None = None
        self.hangup_at: float | None = None
        self.transferred_to: str | None = None
        self.bridged_with: SimCall | None = None
        self.playbacks: list[SimPlayback] = []

    # ------------------------------------------------------------ identity and state

    @property
    def started_at(self) -> float:
        """The clock reading the call's times are counted from."""
        return self._shared.started_at

    @property
    def timeline(self) -> Timeline:
        return self._shared.timeline

    @property
    def utterances(self) -> list[Utterance]:
        return self._shared.utterances

    def now(self) -> float:
        return self._shared.now()

    def _note(self, kind: str, **data: Any) -> None:
        self._shared.timeline.add(self.now(), kind, self.leg, **data)

    def _move(self, target: LegState) -> None:
        self._machine.move(target)
        if target is not LegState.ACTIVE:
            self._interrupt.set()
        else:
            self._interrupt = asyncio.Event()

    def _answer_implicitly(self, why: str) -> None:
        if self._machine.state is LegState.RINGING:
            self._move(LegState.ACTIVE)
            self._note("answered", implicit=why)

    # ------------------------------------------------------------ the Call protocol

    async def answer(self) -> None:
        if self.ended:
            raise CallEnded("the leg has ended")
        if self._machine.state is LegState.RINGING:
            self._move(LegState.ACTIVE)
            self._note("answered")

    async def say(self, text: str) -> None:
        if not self.ended:
            self._answer_implicitly("say")
        if self.held:
            self._refuse_held(text)
        self._machine.require_usable(allow_held=False)
        if not text.strip():
            return
        duration = speech_seconds(text, self.words_per_minute)
        start = self.now()
        self._note("say", text=text, seconds=round(duration, 3))
        interrupt = self._interrupt
        barge = self._barge = asyncio.Event()
        try:
            finished = await _first(self._shared.clock, duration, interrupt, barge)
        except asyncio.CancelledError:
            self._record_cut(text, start, duration, "cancelled")
            raise
        finally:
            self._barge = None
        if finished:
            self._shared.utterances.append(Utterance(text=text, start=start, end=self.now(), leg=self.leg))
            return
        if barge.is_set() and not interrupt.is_set():
            raise SpeechInterrupted(self._record_cut(text, start, duration, "barge-in"))
        state = self._machine.state
        self._record_cut(text, start, duration, str(state))
        if state is LegState.HELD:
            raise HeldError("the leg was put on hold while speaking")
        if state is LegState.BRIDGED:
            raise BridgedError("the leg was bridged while speaking")
        raise CallEnded("the leg ended while speaking")

    def _refuse_held(self, text: str) -> None:
        self._note("say-refused", text=text, why="held")
        raise HeldError("the leg is on hold: the caller cannot hear the agent")

    def interrupt_speech(self) -> None:
        if self._barge is not None:
            self._barge.set()

    def _record_cut(self, text: str, start: float, duration: float, why: str) -> str:
        """Note the words heard before the cut (returned) as a cut Utterance."""
        end = self.now()
        words = text.split()
        heard = int(len(words) * min(1.0, (end - start) / duration)) if duration > 0 else 0
        spoken = " ".join(words[:heard])
        self._note("say-cut", text=text, heard=spoken, why=why)
        if spoken:
            self._shared.utterances.append(
                Utterance(text=spoken, start=start, end=end, leg=self.leg, cut=True)
            )
        return spoken

    async def play(self, source: str, loop: bool = False, *, guard: Guard | None = None) -> SimPlayback:
        if not self.ended:
            self._answer_implicitly("play")
        self._machine.require_usable(allow_held=True)
        self._note("play", source=source, loop=loop)
        playback = SimPlayback(self, source, loop, self.play_seconds)
        self.playbacks.append(playback)
        return playback

    async def hold(self) -> None:
        if self.held:
            return
        if not self.ended:
            self._answer_implicitly("hold")
        self._move(LegState.HELD)
        self._note("hold")

    async def unhold(self) -> None:
        if self.ended:
            raise CallEnded("the leg has ended")
        if not self.held:
            return
        self._move(LegState.ACTIVE)
        self._note("unhold")

    async def transfer(self, destination: Destination) -> None:
        if not self.ended:
            self._answer_implicitly("transfer")
        self._machine.require_usable(allow_held=True)
        extras: dict[str, object] = {}
        if destination.extension:
            extras["extension"] = destination.extension
        if destination.headers:
            extras["headers"] = dict(destination.headers)
        if destination.caller_id:
            extras["caller_id"] = destination.caller_id
        self._note("transfer", to=destination.value, mode="blind", **extras)
        if self.switch is None:
            self._note("transfer-failed", to=destination.value, code="unreachable")
            raise DialFailed("unreachable", "this leg has no switch to transfer through")
        caller_id = destination.caller_id or self._from
        dial = asyncio.ensure_future(self.switch.dial(destination, caller_id, self.transfer_timeout))
        gone = asyncio.ensure_future(self._ended_event.wait())
        try:
            await asyncio.wait({dial, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not dial.done():
                dial.cancel()
            await asyncio.gather(dial, gone, return_exceptions=True)
        if self.ended or dial.cancelled():
            self._note("transfer-cancelled", to=destination.value, why="the leg ended first")
            raise CallEnded("the leg ended during the transfer")
        failure = dial.exception()
        if isinstance(failure, DialFailed):
            self._note("transfer-failed", to=destination.value, code=failure.code)
            raise failure
        if failure is not None:
            raise failure
        remote = dial.result()
        # The caller now talks to the destination; from our side this leg is gone.
        remote.bridged_with = self
        with contextlib.suppress(IllegalLegTransition):
            remote._move(LegState.BRIDGED)
        self.transferred_to = destination.value
        self._note("transferred", to=destination.value, leg_answered=remote.leg)
        self._end(str(EndedReason.ASSISTANT_FORWARDED_CALL), drop_pending=True)

    async def hangup(self, reason: str) -> None:
        if self.ended:
            return
        self._note("hangup", reason=reason)
        self._end(reason, drop_pending=True)

    async def events(self) -> AsyncIterator[CallEvent]:
        async for event in self._feed:
            yield event

    # ------------------------------------------------------------ the driver's side

    async def caller_says(self, text: str, *, speech_started: bool = True, seconds: float = 0.0) -> None:
        """The far end says `text`: SpeechStarted (optional), `seconds` of speaking, CallerSpeech."""
        if self._drops("caller-says", text=text):
            return
        self._note("caller-says", text=text)
        if speech_started:
            self._feed.put(SpeechStarted())
        if seconds > 0:
            await self._shared.clock.sleep(seconds)
            if self._drops("caller-says", text=text):
                return
        self._feed.put(CallerSpeech(text=text, final=True))

    async def press(self, digits: str) -> None:
        """The far end presses keys."""
        if not _DTMF.match(digits):
            raise ValueError(f"not DTMF digits: {digits!r} (use 0-9, *, #, A-D, w)")
        if self._drops("dtmf", digits=digits):
            return
        self._note("dtmf", digits=digits)
        self._feed.put(Dtmf(digits=digits))

    async def remote_hangup(self, cause: str = "hangup") -> None:
        """The far end hangs up (allowed in any state; nothing happens once the leg has ended)."""
        if self.ended:
            return
        self._note("remote-hangup", cause=cause)
        self._feed.put(RemoteHangup(cause=cause))
        self._end(str(EndedReason.CUSTOMER_ENDED_CALL), drop_pending=False)

    async def media_timeout(self) -> None:
        """No media from the far end for too long."""
        if not self._drops("media-timeout"):
            self._note("media-timeout")
            self._feed.put(MediaTimeout())

    async def wait_ended(self) -> None:
        await self._ended_event.wait()

    def _drops(self, kind: str, **data: Any) -> bool:
        state = self._machine.state
        if state in (LegState.ENDED, LegState.HELD, LegState.BRIDGED):
            self._note(f"{kind}-dropped", why=str(state), **data)
            return True
        return False

    def _end(self, reason: str, *, drop_pending: bool) -> None:
        self._machine.move(LegState.ENDED)
        self._interrupt.set()
        self.ended_reason = reason
        self.hangup_at = self.now()
        self._feed.close(drop_pending=drop_pending)
        self._ended_event.set()


class SimSwitch:
    """Reaches the parties declared in `legs`; anything else is rejected (DESIGN §6)."""

    def __init__(
        self,
        legs: Mapping[str, LegSpec | Mapping[str, Any]],
        clock: Clock,
        timeline: Timeline | None = None,
        *,
        utterances: list[Utterance] | None = None,
        started_at: float | None = None,
    ) -> None:
        self.legs: dict[str, LegSpec] = {
            name: spec if isinstance(spec, LegSpec) else LegSpec.model_validate(spec)
            for name, spec in legs.items()
        }
        self._shared = _Shared(clock, timeline, utterances, started_at)
        self.answered: dict[str, SimCall] = {}  # the latest answered leg per declared name
        self.bridges: list[tuple[str, str]] = []
        self._listeners: list[Callable[[SimCall], object]] = []
        self._answered_events: dict[str, asyncio.Event] = {}

    @property
    def timeline(self) -> Timeline:
        return self._shared.timeline

    @property
    def utterances(self) -> list[Utterance]:
        return self._shared.utterances

    def _note(self, kind: str, leg: str, **data: Any) -> None:
        self._shared.timeline.add(self._shared.now(), kind, leg, **data)

    def find(self, destination: Destination | str) -> str | None:
        """The declared leg a destination reaches, if any. Both sides are compared in one form, as the
        destination policy does: number punctuation dropped, SIP URIs lower-cased, `sip:` optional."""
        value = destination.value if isinstance(destination, Destination) else destination
        wanted = destination_key(value)
        for name in self.legs:
            if destination_key(name) == wanted:
                return name
        return None

    def on_answer(self, listener: Callable[[SimCall], object]) -> None:
        """Call `listener(leg)` whenever a dialled party answers (the runner drives its turns)."""
        self._listeners.append(listener)

    async def wait_for_leg(self, name: str) -> SimCall:
        """The answered leg for `name`, waiting until one answers."""
        if name not in self.answered:
            await self._answered_events.setdefault(name, asyncio.Event()).wait()
        return self.answered[name]

    async def dial(self, destination: Destination, caller_id: str, timeout: float) -> SimCall:
        name = self.find(destination)
        leg = name or destination.value
        extras: dict[str, object] = {}
        if destination.extension:
            extras["extension"] = destination.extension  # dialled as DTMF once answered, on a real line
        if destination.headers:
            extras["headers"] = dict(destination.headers)
        self._note("dial", leg, to=destination.value, caller_id=caller_id, timeout=timeout, **extras)
        try:
            return await self._ring(name, destination, caller_id, max(0.0, timeout))
        except asyncio.CancelledError:
            self._note("dial-cancelled", leg, to=destination.value)
            raise

    async def _ring(
        self, name: str | None, destination: Destination, caller_id: str, timeout: float
    ) -> SimCall:
        if name is None:
            raise self._failed(destination.value, "rejected", "not a declared leg")
        spec = self.legs[name]
        if spec.answer is False or spec.after > timeout:
            await self._shared.clock.sleep(timeout)
            raise self._failed(name, "no-answer", f"no answer within {timeout:g}s")
        await self._shared.clock.sleep(spec.after)
        if spec.answer == "busy":
            raise self._failed(name, "busy")
        if spec.answer == "reject":
            raise self._failed(name, "rejected")
        call = SimCall(
            clock=self._shared.clock,
            timeline=self._shared.timeline,
            utterances=self._shared.utterances,
            started_at=self._shared.started_at,
            leg=name,
            from_number=caller_id,
            to_number=destination.value,
            switch=self,
            answered=True,
        )
        self.answered[name] = call
        self._note("dial-answered", name, to=destination.value, after=spec.after)
        self._answered_events.setdefault(name, asyncio.Event()).set()
        for listener in self._listeners:
            listener(call)
        return call

    def _failed(
        self, leg: str, code: Literal["busy", "no-answer", "rejected"], detail: str = ""
    ) -> DialFailed:
        self._note("dial-failed", leg, code=code, **({"detail": detail} if detail else {}))
        return DialFailed(code, detail)

    async def bridge(self, a: Any, b: Any) -> None:
        if not isinstance(a, SimCall) or not isinstance(b, SimCall):
            raise TypeError("the sim switch bridges only sim legs")
        check_bridgeable(a, b)
        for call, other in ((a, b), (b, a)):
            call._move(LegState.BRIDGED)
            call.bridged_with = other
        self.bridges.append((a.leg, b.leg))
        self._note("bridge", a.leg, a=a.leg, b=b.leg)


class SimWorld:
    """The caller leg and the switch of one simulated call, sharing a timeline, utterances and t=0."""

    def __init__(
        self,
        clock: Clock,
        *,
        legs: Mapping[str, LegSpec | Mapping[str, Any]] | None = None,
        from_number: str = "+15551230000",
        to_number: str = "+15559870000",
        caller_name: str = "",
        timeline: Timeline | None = None,
    ) -> None:
        self.clock = clock
        self.timeline = timeline if timeline is not None else Timeline()
        self.utterances: list[Utterance] = []
        self.started_at = clock.monotonic()
        self.switch = SimSwitch(
            legs or {}, clock, self.timeline, utterances=self.utterances, started_at=self.started_at
        )
        self.caller = SimCall(
            clock=clock,
            timeline=self.timeline,
            utterances=self.utterances,
            started_at=self.started_at,
            from_number=from_number,
            to_number=to_number,
            caller_name=caller_name,
            switch=self.switch,
        )

    def now(self) -> float:
        return self.clock.monotonic() - self.started_at
