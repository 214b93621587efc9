"""The call model every channel implements and every agent/control module programs against.

Every operation is async and returns when it is *done*: `say()` returns after the last audio frame
was sent (or, on the sim channel, after the virtual time the words take). That is what guarantees a
goodbye is fully played before the hang-up that follows it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from callgate.swaig.urlguard import Guard


class EndedReason(StrEnum):
    """Why a call ended (Vapi's vocabulary, DESIGN §3)."""

    ASSISTANT_ENDED_CALL = "assistant-ended-call"
    ASSISTANT_SAID_END_CALL_PHRASE = "assistant-said-end-call-phrase"
    SILENCE_TIMED_OUT = "silence-timed-out"
    EXCEEDED_MAX_DURATION = "exceeded-max-duration"
    CUSTOMER_ENDED_CALL = "customer-ended-call"
    ASSISTANT_FORWARDED_CALL = "assistant-forwarded-call"
    PIPELINE_ERROR = "pipeline-error"
    # The server ended the call: a drain ran out of time (`serve --drain-timeout`).
    WORKER_SHUTDOWN = "worker-shutdown"
    # An operator hung the call up (admin API, dashboard).
    MANUALLY_CANCELED = "manually-canceled"


# ---------------------------------------------------------------- events from the far end


@dataclass(frozen=True)
class CallerSpeech:
    """A transcript of the caller's speech; `final` transcripts start a turn."""

    text: str
    final: bool = True


@dataclass(frozen=True)
class SpeechStarted:
    """The caller started speaking (barge-in, resets silence timers)."""


@dataclass(frozen=True)
class Dtmf:
    digits: str


@dataclass(frozen=True)
class RemoteHangup:
    """The far end hung up (or vanished)."""

    cause: str = "hangup"


@dataclass(frozen=True)
class MediaTimeout:
    """No media arrived from the far end for too long: the peer is probably gone."""


CallEvent = CallerSpeech | SpeechStarted | Dtmf | RemoteHangup | MediaTimeout


# ---------------------------------------------------------------- destinations and failures


@dataclass(frozen=True)
class Destination:
    """Where a transfer or a dial goes: a number (E.164), a SIP URI, or another agent document."""

    kind: Literal["number", "sip", "assistant"]
    value: str
    caller_id: str | None = None
    extension: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Destination:
        """A SIP URI if it looks like one (sip:/sips: or user@host), otherwise a number."""
        stripped = text.strip()
        if stripped.lower().startswith(("sip:", "sips:")) or "@" in stripped:
            return cls(kind="sip", value=stripped)
        return cls(kind="number", value=stripped)


def destination_key(destination: str) -> str:
    """The form two spellings of one destination share: number punctuation dropped, SIP URIs
    lower-cased with `sip:` optional (`+1 555-000-2222` ~ `+15550002222`, `sip:A@x` ~ `a@x`)."""
    text = destination.strip()
    lowered = text.lower()
    if lowered.startswith("sip:"):
        return lowered[4:]  # `sip:` is implied; `sips:` (TLS) is kept, it is a different request
    if "@" in lowered:
        return lowered
    return re.sub(r"[\s().-]", "", text)


# `timeout`: a blind transfer the far end accepted but never reported on (no final NOTIFY).
DialFailureCode = Literal["busy", "no-answer", "rejected", "unreachable", "timeout"]


class DialFailed(Exception):
    """A dial or blind transfer did not reach anyone."""

    def __init__(self, code: DialFailureCode, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code: DialFailureCode = code
        self.detail = detail


class CallEnded(Exception):
    """An operation was attempted on a leg that has already ended."""


class SpeechRefused(Exception):
    """The leg cannot hear the agent right now (on hold, or bridged to another party)."""


class SpeechInterrupted(Exception):
    """`say()` was cut short by the caller talking over it (barge-in, `Call.interrupt_speech`).

    `heard` holds the words that were played before the cut: only those reach the history.
    """

    def __init__(self, heard: str) -> None:
        super().__init__(f"interrupted after: {heard!r}")
        self.heard = heard


# ---------------------------------------------------------------- protocols


@runtime_checkable
class Playback(Protocol):
    """A running `play()`; `stop()` ends it early, `wait()` returns when it has finished."""

    async def stop(self) -> None: ...

    async def wait(self) -> None: ...


@runtime_checkable
class Call(Protocol):
    """One leg of a call."""

    @property
    def call_id(self) -> str: ...

    @property
    def from_number(self) -> str: ...

    @property
    def to_number(self) -> str: ...

    @property
    def caller_name(self) -> str: ...

    @property
    def ended(self) -> bool: ...

    async def answer(self) -> None: ...

    async def say(self, text: str) -> None:
        """Speak `text`; returns after its last audio frame was sent. Raises CallEnded if gone."""
        ...

    async def play(self, source: str, loop: bool = False, *, guard: Guard | None = None) -> Playback:
        """Play a WAV file or URL. `guard`: the private-address guard of the document that chose
        `source`; a channel that fetches URLs itself applies it to the request and every redirect."""
        ...

    def interrupt_speech(self) -> None:
        """Barge-in: cut the `say()` in progress within one frame; it raises SpeechInterrupted.
        Nothing happens when the leg is not speaking."""
        ...

    async def hold(self) -> None:
        """No audio either way and no recognition until `unhold()`."""
        ...

    async def unhold(self) -> None: ...

    async def transfer(self, destination: Destination) -> None:
        """Blind transfer (SIP REFER, Twilio <Dial>). Raises DialFailed; on success the leg is gone."""
        ...

    async def hangup(self, reason: str) -> None:
        """End the leg. Idempotent and terminal: later calls do nothing."""
        ...

    def events(self) -> AsyncIterator[CallEvent]:
        """Events from the far end, ending after RemoteHangup or our own hangup."""
        ...


@runtime_checkable
class SpeaksAhead(Protocol):
    """A leg that can synthesise a sentence before its `say()` (audio legs): the agent announces
    each queued sentence, so later sentences are ready while earlier ones play."""

    def prefetch_speech(self, text: str) -> None:
        """Begin synthesising `text` (exactly what a later `say()` gets); never blocks."""
        ...


@runtime_checkable
class Switch(Protocol):
    """Places outbound legs and joins legs together."""

    async def dial(self, destination: Destination, caller_id: str, timeout: float) -> Call:
        """Ring `destination`; returns the answered leg or raises DialFailed."""
        ...

    async def bridge(self, a: Call, b: Call) -> None:
        """Join two legs' audio; callgate's agents are out of the path afterwards."""
        ...
