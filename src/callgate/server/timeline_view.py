"""A call's timeline drawn to scale: bands for speech, silence, hold, ring, consult and bridge,
marks for the caller's words, the hang-up and transfers. Pure: record in, shapes out (the
dashboard turns them into SVG)."""

from __future__ import annotations

from dataclasses import dataclass

from callgate.records.model import CallRecord, TimelineEntry

ROWS = ("agent speech", "caller speech", "silence", "hold", "ring", "consult", "bridge")
SILENCE_AFTER = 3.0  # seconds with nobody speaking before a gap counts as silence
_CALLER_WORDS_PER_SECOND = 2.5  # a final transcript has no duration: assume a steady talker


@dataclass(frozen=True)
class Band:
    row: str
    start: float
    end: float
    label: str = ""


@dataclass(frozen=True)
class Mark:
    kind: str  # hangup | transfer | barge-in
    t: float
    label: str


@dataclass(frozen=True)
class TimelineView:
    duration: float
    bands: list[Band]
    marks: list[Mark]


_OPENERS = {
    "hold": ("hold", ("unhold",)),
    "warm-hold": ("hold", ("warm-unhold",)),
    "dial": ("ring", ("dial-answered", "dial-failed", "dial-cancelled")),
    "warm-dial": ("ring", ("warm-answered", "warm-failed", "warm-cancelled")),
    "warm-consult": ("consult", ("warm-consult-ended", "warm-bridged", "warm-failed", "warm-cancelled")),
    "warm-bridged": ("bridge", ()),
    "bridge": ("bridge", ()),
}


def _end_of(events: list[TimelineEntry], index: int, closers: tuple[str, ...], duration: float) -> float:
    for later in events[index + 1 :]:
        if later.kind in closers or later.kind == "hangup":
            return later.t
    return duration


def build_view(record: CallRecord) -> TimelineView:
    events = sorted(record.timeline, key=lambda e: e.t)
    duration = max(
        [record.duration_seconds(), *(e.t for e in events), *(u.end for u in record.utterances), 0.1]
    )
    bands: list[Band] = []
    marks: list[Mark] = []
    # Speech as the channel played it, when the record has it; else from the `say` events.
    played = [u for u in record.utterances if u.leg == "caller"]
    for utterance in played:
        bands.append(Band("agent speech", utterance.start, min(utterance.end, duration), utterance.text))
    for index, event in enumerate(events):
        data = event.data
        if event.kind == "say" and event.leg == "caller" and not played:
            seconds = data.get("seconds")
            end = (
                event.t + float(seconds)
                if isinstance(seconds, int | float)
                else _next_t(events, index, duration)
            )
            bands.append(Band("agent speech", event.t, min(end, duration), str(data.get("text", ""))))
        elif event.kind in ("caller-said", "caller-says") and event.leg == "caller":
            text = str(data.get("text", ""))
            spoken = max(0.4, len(text.split()) / _CALLER_WORDS_PER_SECOND)
            start = event.t - spoken if event.kind == "caller-said" else event.t
            bands.append(Band("caller speech", max(0.0, start), min(duration, start + spoken), text))
        elif event.kind in _OPENERS:
            row, closers = _OPENERS[event.kind]
            bands.append(
                Band(row, event.t, _end_of(events, index, closers, duration), str(data.get("to", "")))
            )
        elif event.kind == "hangup":
            marks.append(Mark("hangup", event.t, str(data.get("reason", ""))))
        elif event.kind == "transfer-outcome":
            marks.append(Mark("transfer", event.t, f"{data.get('result')} → {data.get('to')}"))
        elif event.kind == "barge-in":
            marks.append(Mark("barge-in", event.t, str(data.get("text", ""))))
    if not played:
        _merge_say_cuts(events, bands)
    bands.extend(_silences(bands, duration))
    return TimelineView(duration=duration, bands=bands, marks=marks)


def _next_t(events: list[TimelineEntry], index: int, duration: float) -> float:
    for later in events[index + 1 :]:
        if later.t > events[index].t:
            return later.t
    return duration


def _merge_say_cuts(events: list[TimelineEntry], bands: list[Band]) -> None:
    """A say cut short (hang-up, hold, barge-in) ends where it was cut."""
    for event in events:
        if event.kind != "say-cut":
            continue
        for i in range(len(bands) - 1, -1, -1):
            band = bands[i]
            if band.row == "agent speech" and band.start <= event.t <= band.end + 1e-6:
                bands[i] = Band(band.row, band.start, event.t, str(event.data.get("heard", band.label)))
                break


def _silences(bands: list[Band], duration: float) -> list[Band]:
    # Hold music and a bridged call are not silence the agent should have filled.
    busy = ("agent speech", "caller speech", "hold", "bridge")
    speech = sorted((b.start, b.end) for b in bands if b.row in busy)
    gaps: list[Band] = []
    cursor = 0.0
    for start, end in speech:
        if start - cursor >= SILENCE_AFTER:
            gaps.append(Band("silence", cursor, start))
        cursor = max(cursor, end)
    if duration - cursor >= SILENCE_AFTER:
        gaps.append(Band("silence", cursor, duration))
    return gaps
