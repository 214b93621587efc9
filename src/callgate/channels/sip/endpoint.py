"""`SipEndpoint`: one UDP user agent serving many calls, and `SipSwitch`, its dial/bridge side.

Every datagram is parsed here and routed: responses to their client transaction (or, for a 2xx
retransmitted after we ACKed, to the leg to re-ACK), retransmitted requests to their server
transaction, in-dialog requests to their leg (481 when no dialog matches), new INVITEs to a new
`SipCall` handed to `on_call` (in a supervised task: an exception there hangs up that call only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from callgate.channels.legs import LegState, check_bridgeable
from callgate.channels.sip import sdp
from callgate.channels.sip.auth import authorization, parse_challenge
from callgate.channels.sip.call import SipCall
from callgate.channels.sip.config import SipConfig
from callgate.channels.sip.dialog import Dialog
from callgate.channels.sip.media import Pacer, RtpSocket
from callgate.channels.sip.message import (
    REASONS,
    NameAddr,
    SipMessage,
    SipParseError,
    SipUri,
    new_branch,
    new_call_id,
    new_tag,
    parse,
    response_to,
    uri_user,
)
from callgate.channels.sip.refer import failure_for
from callgate.channels.sip.transaction import (
    Address,
    ClientTransaction,
    ServerTransaction,
    Timers,
    TransactionLayer,
    TransactionTimeout,
)
from callgate.telephony.base import Call, Destination, DialFailed, EndedReason
from callgate.telephony.clock import Clock, Deadline, SystemClock, within

log = logging.getLogger(__name__)

CallHandler = Callable[[SipCall], Awaitable[None]]
LegPreparer = Callable[[SipCall], None]
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, INFO"
STOP_GRACE = 2.0  # seconds stop() waits for BYE answers


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            self.endpoint.receive(data, (str(addr[0]), int(addr[1])))
        except Exception:  # nothing a peer sends may stop the socket
            log.exception("SIP message handling failed")

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP socket error: %s", exc)


class SipEndpoint:
    """One UDP SIP user agent: answers INVITEs, places calls, keeps every leg's dialog."""

    def __init__(
        self,
        config: SipConfig,
        clock: Clock | None = None,
        on_call: CallHandler | None = None,
        prepare_leg: LegPreparer | None = None,
    ) -> None:
        """`prepare_leg(call)` runs for every new leg — inbound before `on_call`, dialled before
        `dial()` returns — so the owner can attach speech (`use_speech`) to legs it did not answer
        itself, such as a warm transfer's supervisor."""
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.on_call = on_call
        self.prepare_leg = prepare_leg
        self.timers = Timers(config.t1, config.t2)
        self.layer = TransactionLayer(self.send, self.clock, self.timers)
        self.pacer = Pacer(self.clock)
        self.draining = False
        self.switch = SipSwitch(self)
        self._transport: asyncio.DatagramTransport | None = None
        self._port = config.port
        self._calls: dict[tuple[str, str], SipCall] = {}  # (Call-ID, our tag)
        self._ringing: dict[str, SipCall] = {}  # INVITE branch → unanswered inbound leg (CANCEL)
        self._handlers: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Future[object]] = set()

    # ------------------------------------------------------------ life cycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(self.config.host, self.config.port)
            )
        except OSError as error:
            raise OSError(
                error.errno,
                f"cannot listen for SIP on udp {self.config.host}:{self.config.port}: "
                f"{error.strerror or error}",
            ) from error
        self._transport = transport
        self._port = transport.get_extra_info("sockname")[1]
        log.info("SIP listening on udp %s:%s", self.config.host, self._port)

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> Address:
        return (self.config.advertised_host, self._port)

    @property
    def contact(self) -> str:
        return f"<sip:callgate@{self.config.advertised_host}:{self._port}>"

    @property
    def via_host(self) -> str:
        return f"{self.config.advertised_host}:{self._port}"

    @property
    def active_calls(self) -> list[SipCall]:
        return [call for call in self._calls.values() if not call.ended]

    async def stop(self) -> None:
        """Hang up what is left (BYE, waiting a little for answers) and close the socket."""
        self.draining = True
        calls = self.active_calls
        await asyncio.gather(*(call.hangup("server-shutdown") for call in calls), return_exceptions=True)
        for leg in list(self._ringing.values()):
            await leg.hangup("server-shutdown")
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=STOP_GRACE)
        for future in self._tasks:
            future.cancel()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._tasks, *self._handlers, return_exceptions=True)
        self.layer.close()
        await self.pacer.close()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # ------------------------------------------------------------ what legs use (LegHost)

    def send(self, message: SipMessage, address: Address) -> None:
        if self._transport is not None:
            self._transport.sendto(message.encode(), address)

    def forget(self, call: SipCall) -> None:
        self._calls.pop((call.call_id, call.dialog.local_tag), None)
        for branch, leg in list(self._ringing.items()):
            if leg is call:
                del self._ringing[branch]

    def background(self, work: asyncio.Future[object] | asyncio.Task[object]) -> None:
        self._tasks.add(work)
        work.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SIP background work failed", exc_info=task.exception())

    def refer_target(self, destination: Destination, call: SipCall | None = None) -> str:
        """The SIP URI a transfer or dial goes to."""
        if destination.kind == "assistant":
            raise DialFailed("unreachable", "an agent document is not a SIP destination")
        value = destination.value.strip()
        if destination.kind == "sip":
            return value if value.lower().startswith(("sip:", "sips:")) else f"sip:{value}"
        proxy = self.config.proxy_settings()
        if proxy is not None:
            return f"sip:{value}@{proxy.host}:{proxy.port}"
        if call is not None:
            remote = SipUri.parse(NameAddr.parse(call.dialog.remote_uri).uri)
            return f"sip:{value}@{remote.host}" + (f":{remote.port}" if remote.port else "")
        raise DialFailed("unreachable", "dialling a number needs an outbound proxy (--sip-proxy)")

    # ------------------------------------------------------------ incoming datagrams

    def receive(self, data: bytes, address: Address) -> None:
        if not data.strip():
            return  # keep-alive
        try:
            message = parse(data)
        except SipParseError as error:
            self._bad_request(data, address, error)
            return
        if not message.is_request:
            self._response(message)
            return
        if message.method == "ACK":
            self._ack(message)
            return
        transaction, new = self.layer.server(message, address)
        if not new:
            return
        try:
            self._request(message, transaction)
        except SipParseError as error:
            transaction.respond(response_to(message, 400, f"Bad Request ({error})"))

    def _bad_request(self, data: bytes, address: Address, error: SipParseError) -> None:
        try:
            loose = parse(data, strict=False)
        except SipParseError:
            log.info("dropped unparseable datagram from %s:%s (%s)", *address, error)
            return
        if not loose.is_request or loose.method == "ACK":
            return
        log.info("400 to %s:%s: %s", *address, error)
        self.send(response_to(loose, 400, f"Bad Request ({error})"), address)

    def _response(self, response: SipMessage) -> None:
        if self.layer.response(response):
            return
        call = self._calls.get((response.call_id, response.from_tag))
        if call is not None:
            call.on_stray_response(response)

    def _ack(self, ack: SipMessage) -> None:
        if self.layer.ack(ack):
            return
        call = self._calls.get((ack.call_id, ack.to_tag))
        if call is not None:
            call.on_ack(ack)

    def _request(self, request: SipMessage, transaction: ServerTransaction) -> None:
        method = request.method
        if method == "CANCEL":
            leg = self._ringing.get(request.branch)
            if leg is None:
                transaction.respond(response_to(request, 481, REASONS[481]))
                return
            transaction.respond(response_to(request, 200, "OK"))
            leg.on_cancel()
            return
        if request.to_tag:
            call = self._calls.get((request.call_id, request.to_tag))
            if call is None or (call.ended and method != "BYE"):
                transaction.respond(response_to(request, 481, REASONS[481]))
            elif call.ended:
                transaction.respond(response_to(request, 200, "OK"))  # BYE crossing ours
            else:
                call.on_request(request, transaction)
            return
        if method == "OPTIONS":
            status = 503 if self.draining else 200
            response = response_to(request, status, REASONS[status], to_tag=new_tag())
            response.headers.append(("Allow", ALLOW))
            response.headers.append(("Accept", "application/sdp"))
            transaction.respond(response)
        elif method == "INVITE":
            self._invite(request, transaction)
        elif method in ("BYE", "NOTIFY", "INFO", "UPDATE", "PRACK", "REFER"):
            transaction.respond(response_to(request, 481, REASONS[481]))
        else:
            response = response_to(request, 405, "Method Not Allowed")
            response.headers.append(("Allow", ALLOW))
            transaction.respond(response)

    def _invite(self, invite: SipMessage, transaction: ServerTransaction) -> None:
        if self.draining:
            transaction.respond(response_to(invite, 503, REASONS[503], to_tag=new_tag()))
            return
        media: sdp.MediaDescription | None = None
        if invite.body:
            try:
                media = sdp.parse(invite.body).choose()
            except sdp.SdpError as error:
                log.info("488 for INVITE %s: %s", invite.call_id, error)
                transaction.respond(
                    response_to(invite, 488, f"Not Acceptable Here ({error})", to_tag=new_tag())
                )
                return
        transaction.respond(response_to(invite, 100, REASONS[100]))
        self.background(asyncio.ensure_future(self._new_call(invite, transaction, media)))

    async def _new_call(
        self, invite: SipMessage, transaction: ServerTransaction, media: sdp.MediaDescription | None
    ) -> None:
        try:
            rtp = await RtpSocket.open(self.config.host, lambda data, addr: None)
        except OSError as error:
            log.error("no RTP port for INVITE %s: %s", invite.call_id, error)
            transaction.respond(response_to(invite, 500, REASONS[500], to_tag=new_tag()))
            return
        local_tag = new_tag()
        dialog = Dialog.as_uas(invite, local_tag, self.contact, self.via_host)
        sender = NameAddr.parse(invite.get("From"))
        to_number = uri_user(invite.get("To"))
        if not to_number:
            with contextlib.suppress(SipParseError):
                to_number = SipUri.parse(invite.uri).user
        call = SipCall(
            self,
            dialog,
            rtp,
            from_number=uri_user(invite.get("From")),
            to_number=to_number,
            caller_name=sender.display,
            media=media,
            state=LegState.RINGING,
            invite=invite,
            invite_tx=transaction,
            invite_address=transaction.address,
        )
        self._calls[(call.call_id, local_tag)] = call
        self._ringing[invite.branch] = call
        self._prepare(call)
        ringing = response_to(invite, 180, REASONS[180], to_tag=local_tag)
        ringing.headers.append(("Contact", self.contact))
        transaction.respond(ringing)
        if self.on_call is None:
            await call.hangup("no-handler")
            return
        handler = asyncio.ensure_future(self._supervise(call, self.on_call))
        self._handlers.add(handler)
        handler.add_done_callback(self._handlers.discard)

    def _prepare(self, call: SipCall) -> None:
        if self.prepare_leg is None:
            return
        try:
            self.prepare_leg(call)
        except Exception:
            log.exception("call %s: prepare_leg failed", call.call_id)

    async def _supervise(self, call: SipCall, handler: CallHandler) -> None:
        try:
            await handler(call)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call %s: the call handler failed; hanging up", call.call_id)
            with contextlib.suppress(Exception):
                await call.hangup(str(EndedReason.PIPELINE_ERROR))
        finally:
            self._ringing = {b: leg for b, leg in self._ringing.items() if leg is not call}

    def answered(self, call: SipCall) -> None:
        self._ringing = {b: leg for b, leg in self._ringing.items() if leg is not call}

    def register(self, call: SipCall) -> None:
        self._calls[(call.call_id, call.dialog.local_tag)] = call


class SipSwitch:
    """`telephony.base.Switch` over SIP: outbound INVITEs (through the proxy) and frame bridging."""

    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint

    async def dial(self, destination: Destination, caller_id: str, timeout: float) -> SipCall:
        endpoint = self.endpoint
        config = endpoint.config
        target = endpoint.refer_target(destination)
        proxy = config.proxy_settings()
        if proxy is not None:
            address: Address = (proxy.host, proxy.port)
        else:
            uri = SipUri.parse(target)
            address = (uri.host, uri.port or 5060)
        rtp = await RtpSocket.open(config.host, lambda data, addr: None)
        try:
            return await self._invite(destination, target, address, caller_id, timeout, rtp)
        except BaseException:
            rtp.close()
            raise

    async def _invite(
        self,
        destination: Destination,
        target: str,
        address: Address,
        caller_id: str,
        timeout: float,
        rtp: RtpSocket,
    ) -> SipCall:
        endpoint = self.endpoint
        host = endpoint.config.advertised_host
        caller = caller_id.strip() or "callgate"
        invite = SipMessage(method="INVITE", uri=target)
        invite.headers += [
            ("Via", f"SIP/2.0/UDP {endpoint.via_host};branch={new_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f'"{caller}" <sip:{caller}@{host}>;tag={new_tag()}'),
            ("To", f"<{target}>"),
            ("Call-ID", new_call_id(host)),
            ("CSeq", "1 INVITE"),
            ("Contact", endpoint.contact),
            ("User-Agent", endpoint.config.user_agent),
            ("Allow", ALLOW),
        ]
        invite.headers += [(name, value) for name, value in destination.headers.items()]
        invite.headers.append(("Content-Type", "application/sdp"))
        invite.body = sdp.build(
            host=host,
            port=rtp.port,
            session_id=abs(hash(invite.call_id)) % 10**9,
            version=1,
            codecs=(("PCMU", 0), ("PCMA", 8)),
            event_pt=sdp.DEFAULT_EVENT_PT,
            direction=sdp.Direction.SENDRECV,
        )
        proxy = endpoint.config.proxy_settings()
        deadline = endpoint.clock.monotonic() + max(0.0, timeout)
        authenticated = False
        while True:
            response = await self._ring(invite, address, deadline)
            if response.status in (401, 407) and proxy is not None and proxy.username and not authenticated:
                header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
                answer = "Authorization" if response.status == 401 else "Proxy-Authorization"
                challenge = parse_challenge(response.get(header))
                invite = _next_attempt(invite)
                invite.set(
                    answer,
                    authorization(
                        challenge,
                        method="INVITE",
                        uri=target,
                        username=proxy.username,
                        password=proxy.password,
                    ),
                )
                authenticated = True
                continue
            break
        if response.status >= 300:
            raise DialFailed(failure_for(response.status), f"{response.status} {response.reason}")
        dialog = Dialog.as_uac(invite, response, endpoint.contact, endpoint.via_host)
        dialog.move(dialog.state.CONFIRMED)
        ack = dialog.ack(invite.cseq[0])
        endpoint.send(ack, dialog.destination())
        try:
            media = sdp.parse(response.body).choose()
        except sdp.SdpError as error:
            bye = dialog.request("BYE")
            endpoint.layer.request(bye, dialog.destination())
            raise DialFailed("unreachable", f"unusable SDP in the answer: {error}") from error
        call = SipCall(
            endpoint,
            dialog,
            rtp,
            from_number=caller,
            to_number=destination.value,
            caller_name="",
            media=media,
            state=LegState.ACTIVE,
        )
        call.remember_ack(invite.cseq[0], ack)
        endpoint.register(call)
        endpoint._prepare(call)
        if destination.extension:
            await call.send_dtmf(destination.extension)  # e.g. a PBX extension after the trunk answers
        return call

    async def _ring(self, invite: SipMessage, address: Address, deadline: float) -> SipMessage:
        """Send `invite`; its final answer, or DialFailed. CANCELs it on timeout or cancellation."""
        endpoint = self.endpoint
        provisional = asyncio.Event()
        transaction = endpoint.layer.request(invite, address, on_provisional=lambda _: provisional.set())
        final = asyncio.ensure_future(transaction.final())
        timer = asyncio.ensure_future(endpoint.clock.sleep(max(0.0, deadline - endpoint.clock.monotonic())))
        try:
            await asyncio.wait({final, timer}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # The call gave up (the caller left): CANCEL, but keep the INVITE transaction until
            # its final answer, so the 487 is ACKed (§17.1.1.3) and a 2xx that crossed the
            # CANCEL is ACKed and hung up rather than left as a call nobody is on.
            self._cancel(invite, address, provisional.is_set())
            endpoint.background(asyncio.ensure_future(self._abandon(invite, final, transaction)))
            raise
        finally:
            timer.cancel()
        if final.done():
            error = final.exception()
            if isinstance(error, TransactionTimeout):
                raise DialFailed("unreachable", f"no answer from {address[0]}:{address[1]}")
            if error is not None:
                raise error
            return final.result()
        # Rang too long: CANCEL, then take whatever final answer comes (487, or a 2xx that crossed).
        self._cancel(invite, address, provisional.is_set())
        with contextlib.suppress(Deadline, TransactionTimeout):
            response = await within(endpoint.clock, endpoint.timers.t1 * 8, asyncio.shield(final))
            if 200 <= response.status < 300:
                return response  # answered as we gave up: take the call
        final.cancel()
        transaction.cancel()
        raise DialFailed("no-answer", "no answer before the dial timeout")

    async def _abandon(
        self, invite: SipMessage, final: asyncio.Future[SipMessage], transaction: ClientTransaction
    ) -> None:
        """After a CANCEL nobody waits for: take the final answer (the transaction ACKs a
        non-2xx itself); a 2xx is ACKed and ended with BYE at once."""
        endpoint = self.endpoint
        try:
            response = await within(endpoint.clock, endpoint.timers.timeout, asyncio.shield(final))
        except (Deadline, TransactionTimeout, asyncio.CancelledError):
            return
        finally:
            transaction.cancel()
        if 200 <= response.status < 300:
            dialog = Dialog.as_uac(invite, response, endpoint.contact, endpoint.via_host)
            dialog.move(dialog.state.CONFIRMED)
            endpoint.send(dialog.ack(invite.cseq[0]), dialog.destination())
            bye = endpoint.layer.request(dialog.request("BYE"), dialog.destination())
            await _ignore(bye.final())

    def _cancel(self, invite: SipMessage, address: Address, provisional_seen: bool) -> None:
        cancel = SipMessage(method="CANCEL", uri=invite.uri)
        cancel.headers += [
            ("Via", invite.get_all("Via")[0]),
            ("Max-Forwards", "70"),
            ("From", invite.get("From")),
            ("To", invite.get("To")),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq[0]} CANCEL"),
        ]
        if not provisional_seen:
            log.debug("CANCEL before any provisional answer for %s", invite.call_id)
        transaction = self.endpoint.layer.request(cancel, address)
        self.endpoint.background(asyncio.ensure_future(_ignore(transaction.final())))

    async def bridge(self, a: Call, b: Call) -> None:
        if not isinstance(a, SipCall) or not isinstance(b, SipCall):
            raise TypeError("the SIP switch bridges only SIP legs")
        check_bridgeable(a, b)
        held = [leg for leg in (a, b) if leg.held]
        a.join(b)
        b.join(a)
        # A leg held by our re-INVITE (a=sendonly) sends us nothing: resume its media for the bridge.
        await asyncio.gather(*(leg.resume_media() for leg in held))


def _next_attempt(invite: SipMessage) -> SipMessage:
    """The same INVITE with a new branch and the next CSeq (after a 401/407 challenge)."""
    again = SipMessage(method=invite.method, uri=invite.uri, headers=list(invite.headers), body=invite.body)
    number = invite.cseq[0] + 1
    via = invite.get_all("Via")[0]
    again.set("Via", via.split(";branch=")[0] + f";branch={new_branch()};rport")
    again.set("CSeq", f"{number} INVITE")
    return again


async def _ignore(work: Awaitable[object]) -> None:
    with contextlib.suppress(TransactionTimeout, asyncio.CancelledError):
        await work
