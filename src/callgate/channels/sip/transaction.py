"""The transaction layer over UDP (RFC 3261 §17): what we send is retransmitted until answered.

- Client transactions: a request is resent at T1, 2·T1, 4·T1… (Timer A for INVITE; Timer E for
  others, capped at T2 and continuing at T2 after a provisional answer) until a final response,
  and fails with `TransactionTimeout` after 64·T1 (Timer B/F). A non-2xx final answer to our
  INVITE is ACKed here, with the INVITE's branch.
- Server transactions: a retransmitted request gets the last response again; a non-2xx final
  answer to an INVITE is resent until its ACK arrives (Timer G/H). The 2xx to an INVITE is the
  dialog's to resend until ACK (RFC 3261 §13.3.1.4), through `resend_until`.

Timers run on the channel's `Clock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from callgate.channels.sip.message import SipMessage
from callgate.telephony.clock import Clock, Deadline, within

log = logging.getLogger(__name__)

Address = tuple[str, int]
Send = Callable[[SipMessage, Address], None]


@dataclass(frozen=True)
class Timers:
    t1: float = 0.5
    t2: float = 4.0

    @property
    def timeout(self) -> float:
        return 64 * self.t1


class TransactionTimeout(Exception):
    """No final response arrived within 64·T1."""


async def resend_until(
    clock: Clock,
    timers: Timers,
    resend: Callable[[], None],
    done: asyncio.Event,
    *,
    cap: bool,
    first: float | None = None,
) -> bool:
    """Call `resend()` at T1, 2·T1, … (capped at T2 when `cap`) until `done` is set.

    True if `done` was set, False after 64·T1 without it."""
    interval = timers.t1 if first is None else first
    waited = 0.0
    while waited < timers.timeout:
        step = min(interval, timers.timeout - waited)
        await _wait_on(clock, done, step)
        if done.is_set():
            return True
        waited += step
        if waited >= timers.timeout:
            break
        resend()
        interval = min(interval * 2, timers.t2) if cap else interval * 2
    return done.is_set()


async def _wait_on(clock: Clock, event: asyncio.Event, seconds: float) -> None:
    """Return when `event` is set or `seconds` have passed on `clock`."""
    if event.is_set():
        return
    with contextlib.suppress(Deadline):
        await within(clock, seconds, event.wait())


class ClientTransaction:
    """One request we sent, retransmitted until answered; `final()` gives the final response."""

    def __init__(
        self,
        layer: TransactionLayer,
        request: SipMessage,
        address: Address,
        on_provisional: Callable[[SipMessage], None] | None = None,
    ) -> None:
        self.layer = layer
        self.request = request
        self.address = address
        self.invite = request.method == "INVITE"
        self.key = (request.branch, request.method)
        self.on_provisional = on_provisional
        self._answered = asyncio.Event()  # any response: Timer A stops
        self._final: asyncio.Future[SipMessage] = asyncio.get_running_loop().create_future()
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        self.layer.send(self.request, self.address)
        done = self._final_event()
        ok = await resend_until(
            self.layer.clock,
            self.layer.timers,
            lambda: self.layer.send(self.request, self.address),
            self._answered if self.invite else done,
            cap=not self.invite,
        )
        if self.invite and ok and not self._final.done():
            # Provisional seen: no more retransmissions; wait for the final up to Timer B/C.
            await _wait_on(self.layer.clock, done, self.layer.timers.timeout * 3)
        if not self._final.done():
            self._final.set_exception(TransactionTimeout(f"no answer to {self.request.method}"))
        self.layer.forget_client(self)

    def _final_event(self) -> asyncio.Event:
        event = asyncio.Event()
        self._final.add_done_callback(lambda _: event.set())
        return event

    def receive(self, response: SipMessage) -> None:
        self._answered.set()
        if response.status < 200:
            if self.on_provisional is not None:
                self.on_provisional(response)
            return
        if self.invite and response.status >= 300:
            self.layer.send(non_2xx_ack(self.request, response), self.address)
        if not self._final.done():
            self._final.set_result(response)

    async def final(self) -> SipMessage:
        return await asyncio.shield(self._final)

    def cancel(self) -> None:
        self._task.cancel()
        if not self._final.done():
            self._final.cancel()
        self.layer.forget_client(self)


def non_2xx_ack(invite: SipMessage, response: SipMessage) -> SipMessage:
    """The ACK for a non-2xx final answer (§17.1.1.3): same branch, To from the response."""
    ack = SipMessage(method="ACK", uri=invite.uri)
    ack.headers.append(("Via", invite.get_all("Via")[0]))
    for name in ("Route",):
        for value in invite.get_all(name):
            ack.headers.append((name, value))
    ack.headers.append(("From", invite.get("From")))
    ack.headers.append(("To", response.get("To")))
    ack.headers.append(("Call-ID", invite.call_id))
    ack.headers.append(("CSeq", f"{invite.cseq[0]} ACK"))
    ack.headers.append(("Max-Forwards", "70"))
    return ack


class ServerTransaction:
    """One request we received; keeps the last response to answer retransmissions with."""

    def __init__(self, layer: TransactionLayer, request: SipMessage, address: Address) -> None:
        self.layer = layer
        self.request = request
        self.address = address
        self.key = (request.branch, request.method)
        self.last: SipMessage | None = None
        self.acked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def respond(self, response: SipMessage) -> None:
        self.last = response
        self.layer.send(response, self.address)
        if response.status >= 200:
            final_non_2xx = self.request.method == "INVITE" and response.status >= 300
            self._task = asyncio.ensure_future(self._linger(final_non_2xx))

    async def _linger(self, until_ack: bool) -> None:
        """Timer G/H for a non-2xx INVITE answer; otherwise just stay to absorb retransmissions."""
        if until_ack:
            await resend_until(self.layer.clock, self.layer.timers, self.resend, self.acked, cap=True)
        else:
            await self.layer.clock.sleep(self.layer.timers.timeout)
        self.layer.forget_server(self)

    def resend(self) -> None:
        if self.last is not None:
            self.layer.send(self.last, self.address)


class TransactionLayer:
    """Matches responses to client transactions and retransmitted requests to server ones."""

    def __init__(self, send: Send, clock: Clock, timers: Timers) -> None:
        self.send = send
        self.clock = clock
        self.timers = timers
        self._clients: dict[tuple[str, str], ClientTransaction] = {}
        self._servers: dict[tuple[str, str], ServerTransaction] = {}

    def request(
        self,
        request: SipMessage,
        address: Address,
        on_provisional: Callable[[SipMessage], None] | None = None,
    ) -> ClientTransaction:
        if request.method == "ACK":
            raise ValueError("ACK is not a transaction: send it directly")
        transaction = ClientTransaction(self, request, address, on_provisional)
        self._clients[transaction.key] = transaction
        return transaction

    def response(self, response: SipMessage) -> bool:
        """Hand a response to its client transaction; False if none matches (stray, or a 2xx
        retransmission after the INVITE transaction ended: the dialog re-ACKs those)."""
        key = (response.branch, response.cseq[1])
        transaction = self._clients.get(key)
        if transaction is None:
            return False
        transaction.receive(response)
        return True

    def server(self, request: SipMessage, address: Address) -> tuple[ServerTransaction, bool]:
        """The server transaction for `request` and whether it is new (False: a retransmission,
        already answered again here)."""
        key = (request.branch, request.method)
        existing = self._servers.get(key)
        if existing is not None:
            existing.resend()
            return existing, False
        transaction = ServerTransaction(self, request, address)
        self._servers[key] = transaction
        return transaction, True

    def ack(self, ack: SipMessage) -> bool:
        """An ACK for a non-2xx answer ends that INVITE server transaction; True if it matched."""
        transaction = self._servers.get((ack.branch, "INVITE"))
        if transaction is None or transaction.last is None or transaction.last.status < 300:
            return False
        transaction.acked.set()
        return True

    def invite_server(self, branch: str) -> ServerTransaction | None:
        return self._servers.get((branch, "INVITE"))

    def forget_client(self, transaction: ClientTransaction) -> None:
        if self._clients.get(transaction.key) is transaction:
            del self._clients[transaction.key]

    def forget_server(self, transaction: ServerTransaction) -> None:
        if self._servers.get(transaction.key) is transaction:
            del self._servers[transaction.key]

    def close(self) -> None:
        for transaction in list(self._clients.values()):
            transaction.cancel()
        for server in list(self._servers.values()):
            if server._task is not None:
                server._task.cancel()
        self._servers.clear()
