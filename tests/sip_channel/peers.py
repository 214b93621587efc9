"""Real peers for the SIP channel tests: sipp runs, a Python RTP party, a capture, tone checks.

Every process started here has a timeout and is killed in a `finally`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import math
import os
import re
import secrets
import shutil
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np

from callgate.channels.sip.rtp import RtpPacket, RtpSender, event_payload
from callgate.speech.codecs import decode, encode

SCENARIOS = Path(__file__).parent / "scenarios"
RATE = 8000


# Ports handed to peers that bind them later (sipp). Taken outside the kernel's ephemeral range
# (32768-60999), so a socket bound to port 0 meanwhile (our RTP, another call's) cannot take one
# between the check here and the peer's bind; a random start keeps parallel test runs apart.
_PEER_PORTS = range(20000, 30000)
_next_peer_port = [secrets.randbelow(len(_PEER_PORTS))]


def free_udp_port() -> int:
    for _ in range(len(_PEER_PORTS)):
        port = _PEER_PORTS[_next_peer_port[0] % len(_PEER_PORTS)]
        _next_peer_port[0] += 1
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free UDP port for a test peer")


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{tool} is not installed: `make system-deps` installs it")
    return path


async def until(condition: Callable[[], bool], deadline: float = 10.0, what: str = "") -> None:
    """Poll until `condition()` holds; fail after `deadline` seconds."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline
    while not condition():
        if loop.time() > give_up:
            raise AssertionError(f"still waiting after {deadline:g}s for {what or condition}")
        await asyncio.sleep(0.02)


async def listening(port: int, deadline: float = 10.0) -> None:
    """Until something (a sipp UAS we started) has bound UDP `port` on 127.0.0.1."""

    def bound() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return True
        return False

    await until(bound, deadline, f"a listener on udp port {port}")


def hang_up_cue(call_id: str, sipp_port: int) -> None:
    """An in-dialog INFO to a sipp caller running scripted_caller.xml (sipp matches calls by
    Call-ID): its cue to hang up now, so a scenario's `hangup` turn happens when the test says."""
    message = (
        f"INFO sip:sipp@127.0.0.1:{sipp_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{secrets.token_hex(8)}\r\n"
        f"From: <sip:test@127.0.0.1>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:sipp@127.0.0.1:{sipp_port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INFO\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), ("127.0.0.1", sipp_port))


# ---------------------------------------------------------------- audio


def tone(frequency: float, seconds: float, amplitude: int = 8000) -> bytes:
    n = np.arange(int(RATE * seconds))
    samples = amplitude * np.sin(2 * math.pi * frequency * n / RATE)
    return bytes(samples.astype("<i2").tobytes())


def tone_share(pcm: bytes, frequency: float) -> float:
    """The share of the signal's energy within ±40 Hz of `frequency` (0 for silence)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if samples.size < 160 or not np.any(samples):
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size))) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1 / RATE)
    band = spectrum[(freqs > frequency - 40) & (freqs < frequency + 40)].sum()
    return float(band / spectrum.sum())


class ToneSynthesizer:
    """A test voice: each word is 200 ms of one tone. Deterministic, and easy to find in RTP."""

    def __init__(self, frequency: float = 1000.0) -> None:
        self.frequency = frequency
        self.texts: list[str] = []

    async def synthesize(self, text: str, *, sample_rate: int, language: str | None = None) -> bytes:
        assert sample_rate == RATE
        self.texts.append(text)
        return tone(self.frequency, 0.2 * len(text.split()))


class RecordingListener:
    """A test ear: keeps every frame fed to it; paused frames are dropped as a real one would."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.paused = False
        self.pauses = 0
        self.closed = False

    def feed(self, frame: bytes) -> None:
        if not self.paused:
            self.frames.append(frame)

    def pause(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume(self) -> None:
        self.paused = False

    async def aclose(self) -> None:
        self.closed = True

    def audio(self) -> bytes:
        return b"".join(self.frames)


# ---------------------------------------------------------------- a Python RTP party


@dataclass
class Received:
    at: float
    packet: RtpPacket


@dataclass
class RtpParty(asyncio.DatagramProtocol):
    """Sends a tone (PCMU, 20 ms) to whoever last sent to it / a given address; keeps what arrives."""

    frequency: float | None = None
    received: list[Received] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None
    remote: tuple[str, int] | None = None
    sending: bool = True
    port: int = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.append(Received(time.time(), RtpPacket.parse(data)))
        self.remote = (str(addr[0]), int(addr[1]))  # a second leg to this party takes over

    def audio(self, payload_type: int = 0, since: float = 0.0) -> bytes:
        """What arrived (decoded), optionally only what arrived after `since` (time.time())."""
        codec = "PCMU" if payload_type == 0 else "PCMA"
        return b"".join(
            decode(r.packet.payload, codec)
            for r in self.received
            if r.packet.payload_type == payload_type and r.at >= since
        )

    async def send_tone(self, seconds: float) -> None:
        """Send `seconds` of tone (silence if no frequency) once the far end is known."""
        sender = RtpSender(0)
        pcm = tone(self.frequency, seconds) if self.frequency else bytes(int(RATE * seconds) * 2)
        for i in range(0, len(pcm), 320):
            if not self.sending:
                return
            if self.remote is not None and self.transport is not None:
                self.transport.sendto(sender.packet(encode(pcm[i : i + 320], "PCMU")), self.remote)
            await asyncio.sleep(0.02)

    async def say_tone(self, frequency: float, seconds: float) -> None:
        """A burst of voice (a tone) over the line's ongoing silence."""
        self.frequency = frequency
        try:
            await self.send_tone(seconds)
        finally:
            self.frequency = None

    def last_voice_at(self, threshold: float = 300.0) -> float | None:
        """When the last frame with voice in it (PCMU, RMS above `threshold`) arrived."""
        for packet in reversed(self.received):
            if packet.packet.payload_type != 0:
                continue
            samples = np.frombuffer(decode(packet.packet.payload, "PCMU"), dtype="<i2").astype(np.float64)
            if samples.size and float(np.sqrt(np.mean(samples**2))) > threshold:
                return packet.at
        return None

    async def quiet(self, deadline: float = 10.0) -> None:
        """Until the far end's voice has stopped arriving: its last three frames are silence, or
        nothing came for 100 ms (a voice burst then is not taken as talking over the agent)."""

        def silent() -> bool:
            if not self.received or time.time() - self.received[-1].at > 0.1:
                return True
            tail = b"".join(
                decode(r.packet.payload, "PCMU") for r in self.received[-3:] if r.packet.payload_type == 0
            )
            samples = np.frombuffer(tail, dtype="<i2").astype(np.float64)
            return samples.size == 0 or float(np.sqrt(np.mean(samples**2))) < 300

        await until(silent, deadline, "the far end to go quiet")

    async def send_dtmf(self, digits: str, event_pt: int = 101) -> None:
        sender = RtpSender(event_pt)
        assert self.transport is not None and self.remote is not None
        for digit in digits:
            start = sender.timestamp
            for step in range(1, 6):
                packet = bytearray(sender.packet(event_payload(digit, end=step == 5, duration=160 * step)))
                struct.pack_into("!I", packet, 4, start)  # one timestamp per event
                self.transport.sendto(bytes(packet), self.remote)
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def rtp_party(frequency: float | None = None) -> AsyncIterator[RtpParty]:
    loop = asyncio.get_running_loop()
    transport, party = await loop.create_datagram_endpoint(
        lambda: RtpParty(frequency=frequency), local_addr=("127.0.0.1", 0)
    )
    party.port = transport.get_extra_info("sockname")[1]
    try:
        yield party
    finally:
        party.sending = False
        transport.close()


# ---------------------------------------------------------------- sipp


@dataclass
class SippResult:
    returncode: int
    output: str
    errors: str
    messages: str = ""  # every message sipp sent and received (-trace_msg)

    @property
    def sent(self) -> list[str]:
        return [text for _, text in self.logged("sent")]

    @property
    def received(self) -> list[str]:
        return [text for _, text in self.logged("received")]

    def logged(self, direction: str) -> list[tuple[float, str]]:
        """The SIP messages sipp logged as `direction` ("sent"/"received"): (when, as
        time.time(); the text)."""
        found: list[tuple[float, str]] = []
        parts = re.split(r"^-{10,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)$", self.messages, flags=re.M)
        for stamp, block in zip(parts[1::2], parts[2::2], strict=True):
            header, _, text = block.strip().partition("\n")
            if header.startswith(f"UDP message {direction}"):
                at = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()  # sipp: local time
                found.append((at, text.strip()))
        return found

    @property
    def ok(self) -> bool:
        return self.returncode == 0


async def sipp(
    scenario: str,
    target_port: int,
    *,
    keys: dict[str, str] | None = None,
    timeout: float = 20.0,
    port: int | None = None,
    uas: bool = False,
    calls: int = 1,
    workdir: Path,
) -> SippResult:
    """Run one sipp call of `scenario` (a file in scenarios/) against 127.0.0.1:target_port."""
    local_port = port or free_udp_port()
    messages_file = workdir / f"{scenario}.{local_port}.messages.log"
    args = [
        require("sipp"),
        "-sf",
        str(SCENARIOS / scenario),
        "-i",
        "127.0.0.1",
        "-p",
        str(local_port),
        "-m",
        str(calls),
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        "-recv_timeout",
        f"{int(timeout * 1000)}",
        "-nostdin",
        "-trace_msg",
        "-message_file",
        str(messages_file),
        "-trace_err",
        "-error_file",
        str(workdir / f"{scenario}.errors.log"),
    ]
    if not uas:
        args.append(f"127.0.0.1:{target_port}")
    for key, value in (keys or {}).items():
        args += ["-key", key, value]
    process = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=workdir,
        env={**os.environ, "TERM": "dumb"},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout + 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    errors_file = workdir / f"{scenario}.errors.log"
    errors = errors_file.read_text() if errors_file.exists() else ""
    return SippResult(
        process.returncode or 0,
        out.decode(errors="replace")[-3000:],
        errors + err.decode(errors="replace"),
        messages_file.read_text(errors="replace") if messages_file.exists() else "",
    )


@contextlib.asynccontextmanager
async def sipp_running(
    scenario: str, target_port: int, *, workdir: Path, **kwargs: object
) -> AsyncIterator[asyncio.Task[SippResult]]:
    task = asyncio.ensure_future(sipp(scenario, target_port, workdir=workdir, **kwargs))  # type: ignore[arg-type]
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


# ---------------------------------------------------------------- capture


@dataclass(frozen=True)
class Captured:
    at: float
    src_port: int
    dst_port: int
    payload: bytes


@contextlib.asynccontextmanager
async def capture(ports: list[int], path: Path) -> AsyncIterator[list[Captured]]:
    """Capture UDP on lo for `ports` with dumpcap (tshark's capture engine) into a pcap file;
    the list is filled when the block ends."""
    dumpcap = require("dumpcap")
    capture_filter = " or ".join(f"udp port {port}" for port in ports)
    process = await asyncio.create_subprocess_exec(
        "timeout",
        "60",
        dumpcap,
        "-i",
        "lo",
        "-P",
        "-q",
        "-f",
        capture_filter,
        "-w",
        str(path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    packets: list[Captured] = []
    try:
        assert process.stderr is not None
        # dumpcap says "Capturing on 'Loopback: lo'" once packets are being taken.
        await asyncio.wait_for(_until_capturing(process.stderr), 10)
        await asyncio.sleep(0.2)
        yield packets
        await asyncio.sleep(0.3)
    finally:
        if process.returncode is None:
            process.terminate()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), 5)
            if process.returncode is None:
                process.kill()
                await process.wait()
    packets.extend(read_pcap(path))


async def _until_capturing(stream: asyncio.StreamReader) -> None:
    while True:
        line = await stream.readline()
        if not line:
            raise RuntimeError("dumpcap exited before capturing")
        if b"Capturing on" in line:
            return


def read_pcap(path: Path) -> list[Captured]:
    """UDP datagrams of a classic pcap file (Ethernet or Linux cooked link layer, IPv4)."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    link_len = {1: 14, 113: 16, 0: 4}.get(linktype, 14)
    offset = 24
    packets: list[Captured] = []
    while offset + 16 <= len(data):
        seconds, fraction, caplen, _ = struct.unpack_from(endian + "IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
        ip = frame[link_len:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        header = (ip[0] & 0x0F) * 4
        src, dst = struct.unpack_from("!HH", ip, header)
        at = seconds + fraction / (1e9 if nano else 1e6)
        packets.append(Captured(at, src, dst, ip[header + 8 :]))
    return packets
