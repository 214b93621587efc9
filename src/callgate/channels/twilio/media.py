"""Twilio Media Streams messages (bidirectional `<Connect><Stream>`), parsed and built.

From Twilio: `connected`, `start` (stream and call SIDs, media format, our `<Parameter>`s),
`media` (base64 μ-law 8 kHz, 20 ms a message), `mark` (a mark we sent whose audio has been played,
or cleared), `dtmf`, `stop`. To Twilio: `media`, `mark`, `clear`. Every message is one JSON text
frame. Anything else is a `ProtocolError`, which the endpoint logs and drops.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from callgate.speech.base import TELEPHONE_RATE, frame_bytes
from callgate.speech.codecs import decode, encode

MULAW_FRAME = TELEPHONE_RATE * 20 // 1000  # 160 bytes: one 20 ms μ-law frame


class ProtocolError(ValueError):
    """A message that is not Media Streams JSON."""


@dataclass(frozen=True)
class Connected:
    protocol: str = "Call"


@dataclass(frozen=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    encoding: str = "audio/x-mulaw"
    sample_rate: int = TELEPHONE_RATE


@dataclass(frozen=True)
class Media:
    payload: bytes  # μ-law bytes
    track: str = "inbound"


@dataclass(frozen=True)
class Mark:
    name: str


@dataclass(frozen=True)
class DtmfDigit:
    digit: str


@dataclass(frozen=True)
class Stop:
    call_sid: str = ""


Incoming = Connected | Start | Media | Mark | DtmfDigit | Stop


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} is not an object")
    return value


def parse(text: str | bytes) -> Incoming | None:
    """One message from Twilio; None for an event we do not use (forward compatible)."""
    try:
        message = _dict(json.loads(text), "message")
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {exc}") from exc
    event = message.get("event")
    if event == "connected":
        return Connected(str(message.get("protocol", "Call")))
    if event == "start":
        start = _dict(message.get("start"), "start")
        fmt = _dict(start.get("mediaFormat", {}), "start.mediaFormat")
        params = _dict(start.get("customParameters", {}), "start.customParameters")
        stream_sid = str(message.get("streamSid") or start.get("streamSid") or "")
        call_sid = str(start.get("callSid") or "")
        if not stream_sid or not call_sid:
            raise ProtocolError("start without streamSid or callSid")
        return Start(
            stream_sid=stream_sid,
            call_sid=call_sid,
            account_sid=str(start.get("accountSid", "")),
            parameters={str(k): str(v) for k, v in params.items()},
            encoding=str(fmt.get("encoding", "audio/x-mulaw")),
            sample_rate=int(fmt.get("sampleRate", TELEPHONE_RATE)),
        )
    if event == "media":
        media = _dict(message.get("media"), "media")
        try:
            payload = base64.b64decode(str(media.get("payload", "")), validate=True)
        except binascii.Error as exc:
            raise ProtocolError(f"media payload is not base64: {exc}") from exc
        return Media(payload=payload, track=str(media.get("track", "inbound")))
    if event == "mark":
        return Mark(str(_dict(message.get("mark"), "mark").get("name", "")))
    if event == "dtmf":
        return DtmfDigit(str(_dict(message.get("dtmf"), "dtmf").get("digit", "")))
    if event == "stop":
        stop = message.get("stop")
        return Stop(str(stop.get("callSid", "")) if isinstance(stop, dict) else "")
    if not isinstance(event, str):
        raise ProtocolError("message without an event")
    return None


def media_message(stream_sid: str, mulaw: bytes) -> str:
    payload = base64.b64encode(mulaw).decode("ascii")
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def mark_message(stream_sid: str, name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    return json.dumps({"event": "clear", "streamSid": stream_sid})


def to_mulaw_frames(pcm: bytes) -> list[bytes]:
    """8 kHz 16-bit PCM as 20 ms μ-law frames; the last one padded with silence."""
    size = frame_bytes(TELEPHONE_RATE)
    if len(pcm) % 2:
        pcm = pcm[:-1]
    remainder = len(pcm) % size
    if remainder:
        pcm += b"\x00" * (size - remainder)
    mulaw = encode(pcm, "PCMU")
    return [mulaw[i : i + MULAW_FRAME] for i in range(0, len(mulaw), MULAW_FRAME)]


def to_pcm(mulaw: bytes) -> bytes:
    return decode(mulaw, "PCMU")
