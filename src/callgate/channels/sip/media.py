"""RTP sockets (one per leg) and the pacer that drives every leg's outgoing audio.

One pacer task per endpoint ticks every 20 ms on the channel's clock, at absolute times
(start + n·20 ms, so sleeps never accumulate drift), and asks each leg for its next frame. If the
loop stalls by more than a few frames, the pacer starts a new grid instead of bursting to catch up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, cast

from callgate.channels.sip.transaction import Address
from callgate.speech.base import FRAME_MS
from callgate.telephony.clock import Clock

log = logging.getLogger(__name__)

TICK = FRAME_MS / 1000
MAX_LAG = 5 * TICK


class Ticking(Protocol):
    def tick(self, now: float) -> None: ...


class RtpSocket(asyncio.DatagramProtocol):
    """A leg's UDP socket for RTP: packets in go to `on_packet`, `send` sends to the peer."""

    def __init__(self, on_packet: Callable[[bytes, Address], None]) -> None:
        self.on_packet = on_packet
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: Address | None = None
        self.port = 0

    @classmethod
    async def open(cls, host: str, on_packet: Callable[[bytes, Address], None]) -> RtpSocket:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: cls(on_packet), local_addr=(host, 0)
        )
        protocol.port = transport.get_extra_info("sockname")[1]
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            self.on_packet(data, (str(addr[0]), int(addr[1])))
        except Exception:  # one bad packet must not stop the socket
            log.exception("RTP packet handling failed")

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error: %s", exc)  # ICMP port unreachable when the peer is gone

    def send(self, packet: bytes) -> None:
        if self.transport is not None and self.remote is not None:
            self.transport.sendto(packet, self.remote)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class Pacer:
    """Ticks every 20 ms while any leg is registered."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._legs: dict[int, Ticking] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def add(self, leg: Ticking) -> None:
        self._legs[id(leg)] = leg
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def remove(self, leg: Ticking) -> None:
        self._legs.pop(id(leg), None)

    async def _run(self) -> None:
        start = self.clock.monotonic()
        count = 0
        while True:
            if not self._legs:
                self._wake.clear()
                await self._wake.wait()
                start = self.clock.monotonic()
                count = 0
            count += 1
            target = start + count * TICK
            delay = target - self.clock.monotonic()
            if delay > 0:
                await self.clock.sleep(delay)
            elif delay < -MAX_LAG:
                log.warning("media pacer fell %.0f ms behind; restarting its grid", -delay * 1000)
                start = self.clock.monotonic()
                count = 0
            now = self.clock.monotonic()
            for leg in list(self._legs.values()):
                try:
                    leg.tick(now)
                except Exception:
                    log.exception("a leg failed in the media pacer")
                    self.remove(leg)

    async def close(self) -> None:
        self._legs.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
