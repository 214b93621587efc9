"""RTP (RFC 3550) packets for one G.711 stream, and RFC 4733 telephone-events (DTMF).

Our sending side keeps one SSRC, sequence number and timestamp per leg for the whole call: they
advance by one packet / 160 samples every 20 ms whatever we send (speech, music, silence), so the
far end's jitter buffer never sees a jump between utterances.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

HEADER = struct.Struct("!BBHII")
SAMPLES_PER_FRAME = 160  # 20 ms at 8 kHz
DTMF_EVENTS = "0123456789*#ABCD"


class RtpError(ValueError):
    """Not an RTP packet we can read."""


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        if len(data) < HEADER.size:
            raise RtpError("shorter than an RTP header")
        first, second, sequence, timestamp, ssrc = HEADER.unpack_from(data)
        if first >> 6 != 2:
            raise RtpError("not RTP version 2")
        offset = HEADER.size + 4 * (first & 0x0F)
        if first & 0x10:  # header extension
            if len(data) < offset + 4:
                raise RtpError("truncated header extension")
            (words,) = struct.unpack_from("!H", data, offset + 2)
            offset += 4 + 4 * words
        end = len(data)
        if first & 0x20 and end > offset:  # padding
            end -= data[-1]
        if offset > end:
            raise RtpError("truncated RTP packet")
        return cls(second & 0x7F, sequence, timestamp, ssrc, bool(second & 0x80), data[offset:end])


class RtpSender:
    """Numbers our outgoing packets: continuous sequence and timestamp for the leg's lifetime."""

    def __init__(self, payload_type: int) -> None:
        self.payload_type = payload_type
        self.ssrc = random.getrandbits(32)
        self.sequence = random.getrandbits(16)
        self.timestamp = random.getrandbits(32)
        self._marker = True  # the first packet of a stream carries the marker

    def packet(self, payload: bytes) -> bytes:
        second = self.payload_type | (0x80 if self._marker else 0)
        self._marker = False
        data = HEADER.pack(0x80, second, self.sequence, self.timestamp, self.ssrc) + payload
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + SAMPLES_PER_FRAME) & 0xFFFFFFFF
        return data

    def event_packet(self, payload_type: int, payload: bytes, timestamp: int, *, marker: bool) -> bytes:
        """A telephone-event packet: its own payload type and the event's start timestamp, the
        stream's next sequence number (the caller advances the audio timestamp once per tick)."""
        second = payload_type | (0x80 if marker else 0)
        data = HEADER.pack(0x80, second, self.sequence, timestamp & 0xFFFFFFFF, self.ssrc) + payload
        self.sequence = (self.sequence + 1) & 0xFFFF
        return data


@dataclass(frozen=True)
class TelephoneEvent:
    digit: str
    end: bool
    duration: int


def parse_event(payload: bytes) -> TelephoneEvent | None:
    """An RFC 4733 DTMF event payload (None for events other than 0-9 * # A-D)."""
    if len(payload) < 4:
        return None
    event, flags, duration = struct.unpack_from("!BBH", payload)
    if event >= len(DTMF_EVENTS):
        return None
    return TelephoneEvent(DTMF_EVENTS[event], bool(flags & 0x80), duration)


def event_payload(digit: str, *, end: bool, duration: int, volume: int = 10) -> bytes:
    return struct.pack("!BBH", DTMF_EVENTS.index(digit.upper()), (0x80 if end else 0) | volume, duration)


EVENT_TICKS = 5  # a key press lasts 100 ms
GAP_TICKS = 3  # 60 ms between presses
PAUSE_TICKS = 25  # "w" in an extension: half a second


@dataclass(frozen=True)
class EventTick:
    """What one 20 ms tick sends while dialling digits: event packets, or (None) plain audio."""

    payloads: tuple[bytes, ...] | None
    start: bool = False  # the first tick of a key press (new event timestamp, marker bit)


def dtmf_ticks(digits: str) -> list[EventTick]:
    """The tick-by-tick plan for sending `digits` (0-9 * # A-D; w = pause) as RFC 4733 events."""
    plan: list[EventTick] = []
    for digit in digits:
        if digit in "wW":
            plan += [EventTick(None)] * PAUSE_TICKS
            continue
        for step in range(1, EVENT_TICKS + 1):
            end = step == EVENT_TICKS
            payload = event_payload(digit, end=end, duration=SAMPLES_PER_FRAME * step)
            plan.append(EventTick((payload,) * (3 if end else 1), start=step == 1))  # end sent 3 times
        plan += [EventTick(None)] * GAP_TICKS
    return plan


class DtmfDetector:
    """One Dtmf per key press: an event is reported once, at its first packet (RFC 4733 senders
    repeat every packet of an event, and the end packet three times, all with one timestamp)."""

    def __init__(self) -> None:
        self._seen: int | None = None

    def feed(self, packet: RtpPacket) -> str | None:
        event = parse_event(packet.payload)
        if event is None or packet.timestamp == self._seen:
            return None
        self._seen = packet.timestamp
        return event.digit
