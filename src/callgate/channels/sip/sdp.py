"""SDP offer/answer (RFC 3264) for one G.711 audio stream plus RFC 4733 telephone-event.

We accept PCMU (0) and PCMA (8), in the offerer's order of preference, and telephone-event at
8 kHz when offered. An offer with no audio line, no usable codec, a missing connection address or
garbage is `SdpError`, answered 488 by the endpoint.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from callgate.speech.codecs import Codec

STATIC_PT: dict[int, Codec] = {0: "PCMU", 8: "PCMA"}
PT_FOR: dict[Codec, int] = {"PCMU": 0, "PCMA": 8}
DEFAULT_EVENT_PT = 101


class SdpError(ValueError):
    """SDP we cannot use (answered 488 Not Acceptable Here)."""


class Direction(StrEnum):
    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    def answer(self) -> Direction:
        """The direction an answerer gives back to this offered direction."""
        return {
            Direction.SENDONLY: Direction.RECVONLY,
            Direction.RECVONLY: Direction.SENDONLY,
        }.get(self, self)


@dataclass(frozen=True)
class MediaDescription:
    """What one side's SDP says about its audio: where to send, which codec, which direction."""

    host: str
    port: int
    codec: Codec
    payload_type: int
    event_pt: int | None
    direction: Direction


@dataclass(frozen=True)
class Offer:
    """A parsed SDP body: address, port, payload types in order, rtpmap names, direction."""

    host: str
    port: int
    payload_types: tuple[int, ...]
    rtpmap: dict[int, str]
    direction: Direction

    def choose(self, preferred: tuple[Codec, ...] = ("PCMU", "PCMA")) -> MediaDescription:
        """Pick the codec (offerer's order) and telephone-event payload type, or SdpError."""
        event_pt = next(
            (pt for pt in self.payload_types if self.rtpmap.get(pt, "").lower() == "telephone-event/8000"),
            None,
        )
        for pt in self.payload_types:
            name = self.rtpmap.get(pt, "")
            codec = STATIC_PT.get(pt) if not name else _codec_named(name)
            if codec is not None and codec in preferred:
                return MediaDescription(self.host, self.port, codec, pt, event_pt, self.direction)
        raise SdpError("no common codec (we speak PCMU and PCMA)")


def _codec_named(rtpmap: str) -> Codec | None:
    name = rtpmap.upper()
    if name.startswith("PCMU/8000"):
        return "PCMU"
    if name.startswith("PCMA/8000"):
        return "PCMA"
    return None


def parse(body: bytes) -> Offer:
    """The first audio stream of an SDP body, or SdpError."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SdpError("SDP is not UTF-8") from error
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines or not lines[0].startswith("v="):
        raise SdpError("not an SDP body (no v= line)")
    session_host = ""
    session_dir = Direction.SENDRECV
    media: dict[str, object] | None = None
    found: dict[str, object] | None = None
    for line in lines:
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"bad SDP line {line[:40]!r}")
        kind, value = line[0], line[2:]
        if kind == "m":
            if found is not None:
                break  # only the first audio stream matters
            media = _media_line(value)
            if media["type"] == "audio":
                found = media
        elif kind == "c":
            host = _connection(value)
            if media is None:
                session_host = host
            elif media is found:
                found["host"] = host
        elif kind == "a":
            name, _, rest = value.partition(":")
            target = found if media is not None and media is found else None
            if name in {d.value for d in Direction}:
                if media is None:
                    session_dir = Direction(name)
                elif target is not None:
                    target["direction"] = Direction(name)
            elif name == "rtpmap" and target is not None:
                pt_text, _, encoding = rest.partition(" ")
                if not pt_text.isdigit():
                    raise SdpError(f"bad rtpmap {rest!r}")
                rtpmap = target["rtpmap"]
                assert isinstance(rtpmap, dict)
                rtpmap[int(pt_text)] = encoding.strip()
    if found is None:
        raise SdpError("no audio stream in the SDP")
    port = found["port"]
    assert isinstance(port, int)
    if port == 0:
        raise SdpError("the audio stream is disabled (port 0)")
    host = str(found.get("host") or session_host)
    if not host:
        raise SdpError("no connection address (c=) for the audio stream")
    direction = found.get("direction", session_dir)
    assert isinstance(direction, Direction)
    pts = found["pts"]
    rtpmap = found["rtpmap"]
    assert isinstance(pts, tuple) and isinstance(rtpmap, dict)
    return Offer(host=host, port=port, payload_types=pts, rtpmap=rtpmap, direction=direction)


def _media_line(value: str) -> dict[str, object]:
    parts = value.split()
    if len(parts) < 4 or not parts[1].split("/")[0].isdigit():
        raise SdpError(f"bad m= line {value!r}")
    port = int(parts[1].split("/")[0])
    if not 0 <= port <= 65535:
        raise SdpError(f"bad port in m= line {value!r}")
    if not all(p.isdigit() for p in parts[3:]):
        if parts[0] == "audio":
            raise SdpError(f"bad payload types in m= line {value!r}")
        pts: tuple[int, ...] = ()
    else:
        pts = tuple(int(p) for p in parts[3:])
    return {"type": parts[0], "port": port, "proto": parts[2], "pts": pts, "rtpmap": {}}


def _connection(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"bad c= line {value!r}")
    host = parts[2].split("/")[0]
    try:
        ipaddress.ip_address(host)
    except ValueError as error:
        raise SdpError(f"c= address is not an IP address: {host!r}") from error
    return host


def build(
    *,
    host: str,
    port: int,
    session_id: int,
    version: int,
    codecs: tuple[tuple[Codec, int], ...],
    event_pt: int | None,
    direction: Direction,
) -> bytes:
    """An SDP body offering/answering `codecs` ((name, payload type) in order) at host:port."""
    family: Literal["IP4", "IP6"] = "IP6" if ":" in host else "IP4"
    pts = [pt for _, pt in codecs] + ([event_pt] if event_pt is not None else [])
    lines = [
        "v=0",
        f"o=callgate {session_id} {version} IN {family} {host}",
        "s=callgate",
        f"c=IN {family} {host}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(str(pt) for pt in pts)}",
    ]
    lines.extend(f"a=rtpmap:{pt} {name}/8000" for name, pt in codecs)
    if event_pt is not None:
        lines.append(f"a=rtpmap:{event_pt} telephone-event/8000")
        lines.append(f"a=fmtp:{event_pt} 0-16")
    lines.append("a=ptime:20")
    lines.append(f"a={direction.value}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")
