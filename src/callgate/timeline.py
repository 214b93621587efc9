"""What happened on a call: a timeline of events and the outcome the scenario runner checks.

Pure data, shared by the agent, control, the scenario runner and call records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from callgate.redact import redact_data


@dataclass(frozen=True)
class TimelineEvent:
    """One thing that happened. `t` is seconds since the call started, on the call's clock."""

    t: float
    kind: str
    leg: str = "caller"
    data: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        details = ", ".join(f"{key}={value!r}" for key, value in self.data.items())
        return f"{self.t:8.3f}s [{self.leg}] {self.kind}" + (f" {details}" if details else "")


@dataclass
class Timeline:
    events: list[TimelineEvent] = field(default_factory=list)
    # Told of each event as it is added (a live server's logs and event stream); must not raise.
    listener: Callable[[TimelineEvent], None] | None = field(default=None, repr=False, compare=False)

    def add(self, t: float, kind: str, leg: str = "caller", **data: Any) -> TimelineEvent:
        # Stored, shown and exported: credentials never get in (`callgate.redact`).
        event = TimelineEvent(t=t, kind=kind, leg=leg, data=redact_data(data))
        self.events.append(event)
        if self.listener is not None:
            self.listener(event)
        return event

    def of_kind(self, kind: str) -> list[TimelineEvent]:
        return [event for event in self.events if event.kind == kind]

    def render(self) -> str:
        return "\n".join(event.describe() for event in self.events)


@dataclass(frozen=True)
class Utterance:
    """Speech by the agent on a leg, with when it started and finished playing."""

    text: str
    start: float
    end: float
    leg: str = "caller"
    cut: bool = False  # stopped early (hang-up, hold, barge-in): `text` holds only the words heard


@dataclass(frozen=True)
class FunctionCallRecord:
    name: str
    arguments: dict[str, Any]
    result: str | None = None


@dataclass(frozen=True)
class TransferRecord:
    to: str
    mode: str  # blind | warm
    result: str  # completed | failed | refused | cancelled
    reason: str | None = None


@dataclass(frozen=True)
class HttpExchange:
    method: str
    url: str
    json: Any = None
    body: str | None = None
    status: int | None = None
    stubbed: bool = True


@dataclass
class CallOutcome:
    """Everything the scenario runner checks after a call."""

    ended_reason: str | None = None
    hangup_at: float | None = None
    utterances: list[Utterance] = field(default_factory=list)
    functions: list[FunctionCallRecord] = field(default_factory=list)
    transfers: list[TransferRecord] = field(default_factory=list)
    http: list[HttpExchange] = field(default_factory=list)
    timeline: Timeline = field(default_factory=Timeline)
    failures: list[str] = field(default_factory=list)

    def transcript(self, leg: str = "caller") -> str:
        """The agent's speech on one leg as one running text (what `said` checks)."""
        return " ".join(u.text for u in self.utterances if u.leg == leg)
