"""`SipCall`: one SIP leg (the `telephony.base.Call` protocol) — signalling through its dialog,
audio through its RTP socket, paced by the endpoint's pacer.

Choices worth knowing:
- Outgoing RTP never stops while the leg is up: speech, playbacks (mixed in) or silence, one packet
  every 20 ms, one SSRC / sequence / timestamp line for the whole call.
- `say()` returns at the tick after its last frame left. `hangup()` and `transfer()` wait
  `hangup_delay_ms` once before the BYE / REFER (the far end's jitter buffer still plays).
- Held legs (our re-INVITE a=sendonly) hear nothing and cannot be spoken to (HeldError), but
  `play()` works: that is hold music. Incoming frames are not fed to the listener while held.
- Media inactivity: no RTP for `media_timeout` seconds while the peer should be sending →
  `MediaTimeout` on events(), then BYE; the clock pauses while held, while the peer holds us,
  and while bridged to a party that is itself silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from callgate.channels.legs import (
    BridgedError,
    EventFeed,
    HeldError,
    LegIdentity,
    LegState,
    LegStateMachine,
)
from callgate.channels.sip import sdp
from callgate.channels.sip.audio import (
    SILENCE,
    PlaybackStream,
    SpeechQueue,
    load_source,
    mix,
    split_frames,
)
from callgate.channels.sip.config import SipConfig
from callgate.channels.sip.dialog import Dialog, DialogState
from callgate.channels.sip.media import Pacer, RtpSocket
from callgate.channels.sip.message import REASONS, SipMessage, response_to
from callgate.channels.sip.refer import failure_for, sipfrag_status
from callgate.channels.sip.rtp import (
    DtmfDetector,
    EventTick,
    RtpError,
    RtpPacket,
    RtpSender,
    dtmf_ticks,
)
from callgate.channels.sip.transaction import (
    Address,
    ServerTransaction,
    Timers,
    TransactionLayer,
    TransactionTimeout,
    resend_until,
)
from callgate.speech.ahead import SpeechAhead
from callgate.speech.audio import AudioSourceError, SourceFetcher
from callgate.speech.base import TELEPHONE_RATE, Listener, SpeechError, Synthesizer, frame_bytes
from callgate.speech.codecs import Codec, decode, encode
from callgate.swaig.urlguard import Guard
from callgate.telephony.base import (
    CallEnded,
    CallEvent,
    Destination,
    DialFailed,
    DialFailureCode,
    Dtmf,
    EndedReason,
    MediaTimeout,
    RemoteHangup,
    SpeechInterrupted,
)
from callgate.telephony.clock import Clock, Deadline, within
from callgate.timeline import Utterance

log = logging.getLogger(__name__)

BRIDGE_DEPTH = 6  # frames of relay buffer between bridged legs (120 ms)
SILENT_PARTNER = 1.0  # seconds without media after which a bridged partner counts as silent
_FRAME = frame_bytes(TELEPHONE_RATE)


class LegHost(Protocol):
    """What a leg needs from its endpoint."""

    clock: Clock
    config: SipConfig
    timers: Timers
    layer: TransactionLayer
    pacer: Pacer

    def send(self, message: SipMessage, address: Address) -> None: ...

    def forget(self, call: SipCall) -> None: ...

    def background(self, work: asyncio.Future[object] | asyncio.Task[object]) -> None: ...

    def refer_target(self, destination: Destination, call: SipCall | None = None) -> str: ...


class SipCall(LegIdentity):
    """One SIP leg. Built by the endpoint (inbound INVITE) or its switch (outbound dial)."""

    def __init__(
        self,
        host: LegHost,
        dialog: Dialog,
        rtp: RtpSocket,
        *,
        from_number: str,
        to_number: str,
        caller_name: str,
        media: sdp.MediaDescription | None,
        state: LegState,
        invite: SipMessage | None = None,
        invite_tx: ServerTransaction | None = None,
        invite_address: Address | None = None,
    ) -> None:
        self.host = host
        self.dialog = dialog
        self.rtp = rtp
        rtp.on_packet = self._on_rtp
        self._call_id = dialog.call_id
        self._from = from_number
        self._to = to_number
        self._caller_name = caller_name
        self._machine = LegStateMachine(state)
        self._feed = EventFeed()
        self._ended_event = asyncio.Event()
        self._acked = asyncio.Event()
        self.invite = invite
        self._invite_tx = invite_tx
        self._invite_address = invite_address
        self.media = media
        self._sender = RtpSender(media.payload_type if media else 0)
        if media is not None:
            rtp.remote = (media.host, media.port)
        self._sdp_version = 1
        self._session_id = abs(hash(dialog.call_id)) % 10**9
        self._remote_sends = media.direction is sdp.Direction.SENDRECV if media else True
        self._we_send = True
        self._speech = SpeechQueue()
        self._playbacks: list[PlaybackStream] = []
        self._bridge_in: deque[bytes] = deque(maxlen=BRIDGE_DEPTH)
        self._rx_buffer = b""
        self._dtmf = DtmfDetector()
        self._dtmf_out: deque[EventTick] = deque()
        self._dtmf_done: asyncio.Future[None] | None = None
        self._event_ts = 0
        self._notify: asyncio.Queue[int] | None = None
        self._last_invite_ack: tuple[int, SipMessage] | None = None
        self._ending = False
        self._media_lost = False
        self.synthesizer: Synthesizer | None = None
        self.partials_while_speaking = False
        self._saying = 0
        self.listener: Listener | None = None
        self.language: str | None = None
        self._ahead = SpeechAhead()
        self.fetch_source: SourceFetcher | None = None  # play() URLs; unset: fetched unguarded
        self.hangup_delay_ms = host.config.hangup_delay_ms
        self.media_timeout = host.config.media_timeout
        self.bridged_with: SipCall | None = None
        self.ended_reason: str | None = None
        self.ended_detail: str = ""
        self.transferred_to: str | None = None
        self.frames_sent = 0
        self.frames_received = 0
        self.on_frame_sent: Callable[[float], None] | None = None
        self.on_frame_received: Callable[[bytes], None] | None = None
        self.last_rx = host.clock.monotonic()
        self.started_at = host.clock.monotonic()
        self.leg = "caller" if invite is not None else "callee"
        self.utterances: list[Utterance] = []  # what the agent said on this leg, as it was played
        if state is LegState.ACTIVE:
            self._start_media()

    # ------------------------------------------------------------ speech attachment

    def use_speech(
        self,
        synthesizer: Synthesizer | None,
        listener: Listener | None,
        *,
        partials_while_speaking: bool = False,
    ) -> None:
        """The leg's voice and ear, attached by the owner before `answer()`. With
        `partials_while_speaking` (barge-in counts words: DESIGN §8) the ear makes partial
        transcripts while the agent's speech plays, and only then: each costs a recognition run."""
        self.synthesizer = synthesizer
        self.listener = listener
        self.partials_while_speaking = partials_while_speaking

    def use_source_fetcher(self, fetch: SourceFetcher) -> None:
        """How play() fetches http(s) sources: the call's owner passes one that applies the agent
        document's private-address guard (a channel knows nothing of documents)."""
        self.fetch_source = fetch

    def deliver(self, event: CallEvent) -> None:
        """The listener's EventSink: its events reach `events()` (dropped while held/bridged)."""
        if self._machine.state in (LegState.ACTIVE, LegState.RINGING):
            self._feed.put(event)

    def interrupt_speech(self) -> None:
        """Barge-in: stop the agent's audio now; the running say() raises SpeechInterrupted."""
        self._ahead.clear()
        self._speech.fail_all(lambda utterance: SpeechInterrupted(utterance.heard()))

    # ------------------------------------------------------------ the Call protocol

    async def answer(self) -> None:
        if self.ended or self._ending:
            raise CallEnded("the leg has ended")
        if self._machine.state is not LegState.RINGING:
            return
        assert self.invite is not None and self._invite_tx is not None
        response = response_to(self.invite, 200, "OK", to_tag=self.dialog.local_tag)
        response.headers.append(("Contact", self.dialog.local_contact))
        response.headers.append(("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, INFO"))
        response.headers.append(("Server", self.host.config.user_agent))
        response.headers.append(("Content-Type", "application/sdp"))
        response.body = self._sdp_body(
            self.media.direction.answer() if self.media else sdp.Direction.SENDRECV
        )
        self._machine.move(LegState.ACTIVE)
        self.dialog.move(DialogState.CONFIRMED)
        self._invite_tx.respond(response)
        self._start_media()
        address = self._invite_tx.address
        self.host.background(asyncio.ensure_future(self._await_ack(response, address)))

    async def _await_ack(self, response: SipMessage, address: Address) -> None:
        """Resend our 2xx until the ACK comes (§13.3.1.4); without one the call is hung up."""
        acked = await resend_until(
            self.host.clock,
            self.host.timers,
            lambda: self.host.send(response, address),
            self._acked,
            cap=True,
        )
        if not acked and not self.ended:
            log.warning("call %s: no ACK for our 200 OK; hanging up", self.call_id)
            self._feed.put(RemoteHangup(cause="no-ack"))
            await self._bye(str(EndedReason.CUSTOMER_ENDED_CALL), "no-ack", drop_pending=False)

    async def say(self, text: str) -> None:
        if not self.ended and self._machine.state is LegState.RINGING:
            await self.answer()
        self._require_speakable()
        if not text.strip():
            return
        if self.synthesizer is None:
            raise SpeechError("no synthesizer")
        clears = self._ahead.clears
        pcm = await self._ahead.take(text, self._synthesize)
        self._require_speakable()
        if self._ahead.clears != clears:
            raise SpeechInterrupted("")  # barged in while its audio was being made: none of it plays
        utterance = self._speech.add(text, split_frames(pcm))
        start = self._now()
        self._partials(True)
        try:
            await asyncio.shield(utterance.done)
        except BaseException:
            if not utterance.done.done():
                utterance.done.cancel()  # cancelled say(): the pacer drops it at once
            heard = utterance.heard()
            if heard:
                self.utterances.append(Utterance(heard, start, self._now(), self.leg, cut=True))
            raise
        finally:
            self._partials(False)
        self.utterances.append(Utterance(text, start, self._now(), self.leg))

    def prefetch_speech(self, text: str) -> None:
        """A sentence the agent will say soon: synthesise it now, while earlier ones play."""
        if self.synthesizer is not None and not self.ended and text.strip():
            self._ahead.start(text, self._synthesize)

    async def _synthesize(self, text: str) -> bytes:
        if self.synthesizer is None:
            raise SpeechError("no synthesizer")
        return await self.synthesizer.synthesize(text, sample_rate=TELEPHONE_RATE, language=self.language)

    def _partials(self, on: bool) -> None:
        self._saying += 1 if on else -1  # say()s may overlap: partials stay on until the last ends
        switch = getattr(self.listener, "set_partials", None)  # speech.base.PartialsSwitch
        if switch is not None and self.partials_while_speaking:
            switch(self._saying > 0)

    def _now(self) -> float:
        return self.host.clock.monotonic() - self.started_at

    def _require_speakable(self) -> None:
        if self._ending:
            raise CallEnded("the leg is ending")
        self._machine.require_usable(allow_held=False)

    async def play(self, source: str, loop: bool = False, *, guard: Guard | None = None) -> PlaybackStream:
        """Start playing `source` (mixed over speech; works while held: hold music). Returns at
        once: the file or URL loads in the background, so a slow hold-music server delays only the
        music. A source that cannot be loaded ends the playback with how = "error: …" (logged)."""
        if not self.ended and self._machine.state is LegState.RINGING:
            await self.answer()
        self._machine.require_usable(allow_held=True)
        stream = PlaybackStream(source, [], loop, loaded=False)
        self._playbacks.append(stream)
        self.host.background(asyncio.ensure_future(self._load(stream, guard)))
        return stream

    async def _load(self, stream: PlaybackStream, guard: Guard | None) -> None:
        try:
            frames = split_frames(await load_source(stream.source, fetch=self.fetch_source, guard=guard))
        except AudioSourceError as error:
            log.warning("call %s: cannot play %s: %s", self.call_id, stream.source, error)
            stream.end(f"error: {error}")
            return
        stream.frames = frames
        stream.loaded = True

    async def hold(self) -> None:
        if self.held:
            return
        if not self.ended and self._machine.state is LegState.RINGING:
            await self.answer()
        self._machine.move(LegState.HELD)
        self._speech.fail_all(lambda _: HeldError("the leg was put on hold while speaking"))
        if self.listener is not None:
            self.listener.pause()
        await self._reinvite(sdp.Direction.SENDONLY)

    async def unhold(self) -> None:
        if self.ended:
            raise CallEnded("the leg has ended")
        if not self.held:
            return
        self._machine.move(LegState.ACTIVE)
        self.last_rx = self.host.clock.monotonic()
        if self.listener is not None:
            self.listener.resume()
        await self._reinvite(sdp.Direction.SENDRECV)

    async def _reinvite(self, direction: sdp.Direction) -> None:
        """Offer `direction` by re-INVITE and ACK its 2xx (a failure keeps our local state)."""
        request = self.dialog.request("INVITE", self._sdp_body(direction), "application/sdp")
        transaction = self.host.layer.request(request, self.dialog.destination())
        try:
            response = await transaction.final()
        except TransactionTimeout:
            log.warning("call %s: re-INVITE (%s) unanswered", self.call_id, direction)
            return
        if 200 <= response.status < 300:
            ack = self.dialog.ack(request.cseq[0])
            self._last_invite_ack = (request.cseq[0], ack)
            self.host.send(ack, self.dialog.destination())
            self._take_answer(response.body)
        else:
            log.warning("call %s: re-INVITE (%s) answered %s", self.call_id, direction, response.status)

    async def transfer(self, destination: Destination) -> None:
        if not self.ended and self._machine.state is LegState.RINGING:
            await self.answer()
        if self._ending:
            raise CallEnded("the leg is ending")
        self._machine.require_usable(allow_held=True)
        await self._jitter_allowance()
        if self.ended:
            raise CallEnded("the leg ended before the transfer")
        target = self.host.refer_target(destination, self)
        request = self.dialog.request("REFER")
        request.headers.append(("Refer-To", f"<{target}>"))
        request.headers.append(("Referred-By", f"<{self.dialog.local_contact.strip('<>')}>"))
        self._notify = asyncio.Queue()
        try:
            await self._refer(request, target)
        finally:
            self._notify = None

    async def _refer(self, request: SipMessage, target: str) -> None:
        transaction = self.host.layer.request(request, self.dialog.destination())
        response = await self._unless_ended(transaction.final())
        if isinstance(response, TransactionTimeout):
            raise DialFailed("timeout", "no answer to REFER")
        assert isinstance(response, SipMessage)
        if response.status >= 300:
            code: DialFailureCode = "rejected" if response.status in (403, 603) else "unreachable"
            raise DialFailed(code, f"REFER answered {response.status} {response.reason}")
        deadline = self.host.clock.monotonic() + self.host.config.refer_timeout
        notify = self._notify
        assert notify is not None
        while True:
            left = deadline - self.host.clock.monotonic()
            if left <= 0:
                raise DialFailed("timeout", f"no final NOTIFY within {self.host.config.refer_timeout:g}s")
            status = await self._unless_ended(self._next_notify(notify, left))
            if status is None:
                continue  # the deadline check above decides
            assert isinstance(status, int)
            if status < 200:
                continue
            if status < 300:
                self.transferred_to = target
                await self._bye(str(EndedReason.ASSISTANT_FORWARDED_CALL), "", drop_pending=True, delay=False)
                return
            raise DialFailed(failure_for(status), f"the transferee's INVITE got {status}")

    async def _next_notify(self, queue: asyncio.Queue[int], seconds: float) -> int | None:
        try:
            return await within(self.host.clock, seconds, queue.get())
        except Deadline:
            return None

    async def _unless_ended(self, work: object) -> object:
        """`work`'s result (a TransactionTimeout is returned, not raised); CallEnded if the leg
        ends first."""
        assert asyncio.iscoroutine(work)
        task = asyncio.ensure_future(work)
        gone = asyncio.ensure_future(self._ended_event.wait())
        try:
            await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not task.done():
            task.cancel()
            raise CallEnded("the leg ended during the transfer")
        error = task.exception()
        if isinstance(error, TransactionTimeout):
            return error
        if error is not None:
            raise error
        return task.result()

    async def hangup(self, reason: str) -> None:
        if self.ended or self._ending:
            return
        if self._machine.state is LegState.RINGING and self._invite_tx is not None:
            assert self.invite is not None
            self._ending = True
            self._invite_tx.respond(response_to(self.invite, 603, REASONS[603], to_tag=self.dialog.local_tag))
            self._end(reason, "", drop_pending=True)
            return
        await self._bye(reason, "", drop_pending=True)

    def events(self) -> AsyncIterator[CallEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[CallEvent]:
        async for event in self._feed:
            yield event

    async def wait_ended(self) -> None:
        await self._ended_event.wait()

    async def send_dtmf(self, digits: str) -> None:
        """Press keys on this leg (an extension after a dialled party answers): RFC 4733 events in
        the leg's RTP stream, paced like audio; returns when the last one has been sent. Without a
        negotiated telephone-event payload type nothing is sent (logged)."""
        if self.ended:
            raise CallEnded("the leg has ended")
        if self.media is None or self.media.event_pt is None:
            log.warning("call %s: the peer takes no telephone-events; cannot dial %r", self.call_id, digits)
            return
        while self._dtmf_done is not None and not self._dtmf_done.done():
            await asyncio.shield(self._dtmf_done)
        self._dtmf_out.extend(dtmf_ticks(digits))
        self._dtmf_done = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._dtmf_done)

    # ------------------------------------------------------------ ending

    async def _jitter_allowance(self) -> None:
        if self.hangup_delay_ms > 0:
            await self.host.clock.sleep(self.hangup_delay_ms / 1000)

    async def _bye(self, reason: str, detail: str, *, drop_pending: bool, delay: bool = True) -> None:
        """End the leg with a BYE (retransmitted in the background until answered)."""
        if self.ended or self._ending:
            return
        self._ending = True
        if delay:
            await self._jitter_allowance()
        if self.ended:
            return
        request = self.dialog.request("BYE")
        if detail:
            request.headers.append(("Reason", f'SIP;cause=200;text="{detail}"'))
        self._end(reason, detail, drop_pending=drop_pending)
        transaction = self.host.layer.request(request, self.dialog.destination())
        self.host.background(asyncio.ensure_future(_quietly(transaction.final())))

    def _end(self, reason: str, detail: str, *, drop_pending: bool) -> None:
        if self.ended:
            return
        self._ending = True
        self._machine.move(LegState.ENDED)
        with contextlib.suppress(Exception):
            self.dialog.move(DialogState.TERMINATED)
        self.ended_reason = reason
        self.ended_detail = detail
        self._speech.fail_all(lambda _: CallEnded("the leg ended while speaking"))
        self._ahead.clear()
        for playback in self._playbacks:
            playback.end("call-ended")
        self._playbacks.clear()
        self._dtmf_out.clear()
        if self._dtmf_done is not None and not self._dtmf_done.done():
            self._dtmf_done.set_exception(CallEnded("the leg ended while dialling digits"))
        self.host.pacer.remove(self)
        self.rtp.close()
        self._feed.close(drop_pending=drop_pending)
        self._ended_event.set()
        self._acked.set()
        if self.listener is not None:
            self.host.background(asyncio.ensure_future(self.listener.aclose()))
        self.host.forget(self)
        partner = self.bridged_with
        if partner is not None and not partner.ended:
            self.host.background(asyncio.ensure_future(partner.hangup("bridged-party-ended")))

    # ------------------------------------------------------------ requests from the peer

    def on_request(self, request: SipMessage, transaction: ServerTransaction) -> None:
        """An in-dialog request for this leg (the endpoint matched the dialog)."""
        if not self.dialog.accepts(request):
            transaction.respond(response_to(request, 500, "Server Internal Error"))
            return
        method = request.method
        if method == "BYE":
            transaction.respond(response_to(request, 200, "OK"))
            if not self.ended:
                self._feed.put(RemoteHangup(cause="hangup"))
                self._end(str(EndedReason.CUSTOMER_ENDED_CALL), "", drop_pending=False)
        elif method == "INVITE":
            self._on_reinvite(request, transaction)
        elif method == "NOTIFY":
            transaction.respond(response_to(request, 200, "OK"))
            status = sipfrag_status(request.body)
            if status is not None and self._notify is not None:
                self._notify.put_nowait(status)
        elif method in ("OPTIONS", "INFO", "UPDATE"):
            transaction.respond(response_to(request, 200, "OK"))
        else:
            response = response_to(request, 405, "Method Not Allowed")
            response.headers.append(("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, INFO"))
            transaction.respond(response)

    def _on_reinvite(self, request: SipMessage, transaction: ServerTransaction) -> None:
        direction = sdp.Direction.SENDRECV
        if request.body:
            try:
                offer = sdp.parse(request.body).choose()
            except sdp.SdpError as error:
                transaction.respond(response_to(request, 488, f"Not Acceptable Here ({error})"))
                return
            self._apply_remote(offer)
            direction = offer.direction.answer()
        response = response_to(request, 200, "OK")
        response.headers.append(("Contact", self.dialog.local_contact))
        response.headers.append(("Content-Type", "application/sdp"))
        response.body = self._sdp_body(direction)
        transaction.respond(response)
        self._acked = asyncio.Event()
        self.host.background(asyncio.ensure_future(self._await_ack(response, transaction.address)))

    def on_ack(self, ack: SipMessage) -> None:
        self._acked.set()
        if ack.body and self.media is None:  # late offer: the answer comes in the ACK
            with contextlib.suppress(sdp.SdpError):
                self._apply_remote(sdp.parse(ack.body).choose())

    def on_cancel(self) -> bool:
        """CANCEL of our unanswered INVITE: 487 to it; False if already answered."""
        if self._machine.state is not LegState.RINGING or self._invite_tx is None:
            return False
        assert self.invite is not None
        self._invite_tx.respond(response_to(self.invite, 487, REASONS[487], to_tag=self.dialog.local_tag))
        self._feed.put(RemoteHangup(cause="cancel"))
        self._end(str(EndedReason.CUSTOMER_ENDED_CALL), "cancel", drop_pending=False)
        return True

    def on_stray_response(self, response: SipMessage) -> None:
        """A 2xx to our (re-)INVITE retransmitted after we ACKed it: ACK again."""
        if self._last_invite_ack is None or response.cseq[1] != "INVITE":
            return
        cseq, ack = self._last_invite_ack
        if response.cseq[0] == cseq and 200 <= response.status < 300:
            self.host.send(ack, self.dialog.destination())

    def remember_ack(self, cseq: int, ack: SipMessage) -> None:
        self._last_invite_ack = (cseq, ack)

    # ------------------------------------------------------------ media

    def _sdp_body(self, direction: sdp.Direction) -> bytes:
        self._sdp_version += 1
        if self.media is not None:
            codecs: tuple[tuple[Codec, int], ...] = ((self.media.codec, self.media.payload_type),)
            event_pt = self.media.event_pt
        else:
            codecs = (("PCMU", 0), ("PCMA", 8))
            event_pt = sdp.DEFAULT_EVENT_PT
        self._we_send = direction in (sdp.Direction.SENDRECV, sdp.Direction.SENDONLY)
        return sdp.build(
            host=self.host.config.advertised_host,
            port=self.rtp.port,
            session_id=self._session_id,
            version=self._sdp_version,
            codecs=codecs,
            event_pt=event_pt,
            direction=direction,
        )

    def _take_answer(self, body: bytes) -> None:
        if not body:
            return
        try:
            self._apply_remote(sdp.parse(body).choose())
        except sdp.SdpError as error:
            log.warning("call %s: unusable SDP answer: %s", self.call_id, error)

    def _apply_remote(self, media: sdp.MediaDescription) -> None:
        if self.media is None or media.payload_type != self._sender.payload_type:
            self._sender.payload_type = media.payload_type
        self.media = media
        self.rtp.remote = (media.host, media.port)
        # Any direction but sendrecv is a hold (a held phone often sends nothing, even when it
        # says sendonly): the inactivity clock pauses.
        self._remote_sends = media.direction is sdp.Direction.SENDRECV
        self._we_send = media.direction in (sdp.Direction.SENDRECV, sdp.Direction.RECVONLY)
        self.last_rx = self.host.clock.monotonic()

    def _start_media(self) -> None:
        self.last_rx = self.host.clock.monotonic()
        self.host.pacer.add(self)

    def tick(self, now: float) -> None:
        """The pacer's call every 20 ms: send the next frame, watch for a vanished peer."""
        if self.ended:
            self.host.pacer.remove(self)
            return
        state = self._machine.state
        if state is LegState.BRIDGED:
            frame = self._bridge_in.popleft() if self._bridge_in else SILENCE
        else:
            parts = []
            speech = self._speech.next_frame()
            if speech is not None:
                parts.append(speech)
            for playback in list(self._playbacks):
                music = playback.next_frame()
                if music is not None:
                    parts.append(music)
                elif playback.finished.is_set():
                    self._playbacks.remove(playback)
            frame = mix(parts) if parts else SILENCE
        if self._dtmf_out and self._send_event():
            pass
        elif self.media is not None and self._we_send:
            self.rtp.send(self._sender.packet(encode(frame, self.media.codec)))
            self.frames_sent += 1
            if self.on_frame_sent is not None:
                self.on_frame_sent(now)
        self._watch_media(now, state)

    def _send_event(self) -> bool:
        """Send this tick's telephone-event packets, if the plan has any (else audio goes out)."""
        step = self._dtmf_out.popleft()
        if not self._dtmf_out and self._dtmf_done is not None and not self._dtmf_done.done():
            self._dtmf_done.set_result(None)
        if step.payloads is None or self.media is None or self.media.event_pt is None:
            return False
        if step.start:
            self._event_ts = self._sender.timestamp
        for payload in step.payloads:
            packet = self._sender.event_packet(
                self.media.event_pt, payload, self._event_ts, marker=step.start
            )
            self.rtp.send(packet)
        self._sender.timestamp = (self._sender.timestamp + 160) & 0xFFFFFFFF
        return True

    def _watch_media(self, now: float, state: LegState) -> None:
        paused = state is LegState.HELD or not self._remote_sends or self._ending or self._media_lost
        if state is LegState.BRIDGED:
            partner = self.bridged_with
            paused = paused or partner is None or now - partner.last_rx > SILENT_PARTNER
        if paused:
            self.last_rx = now
        elif now - self.last_rx > self.media_timeout:
            log.info("call %s: no media for %.1f s; hanging up", self.call_id, now - self.last_rx)
            self._feed.put(MediaTimeout())
            self.host.background(
                asyncio.ensure_future(
                    self._bye(
                        str(EndedReason.CUSTOMER_ENDED_CALL), "media-timeout", drop_pending=False, delay=False
                    )
                )
            )
            self._media_lost = True

    def _on_rtp(self, data: bytes, address: Address) -> None:
        if self.ended:
            return
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            return
        media = self.media
        if media is None:
            return
        self.last_rx = self.host.clock.monotonic()
        if media.event_pt is not None and packet.payload_type == media.event_pt:
            digit = self._dtmf.feed(packet)
            if digit is not None and self._machine.state is LegState.ACTIVE:
                self._feed.put(Dtmf(digits=digit))
            return
        if packet.payload_type not in (0, 8):
            return  # comfort noise and the like: activity, not audio
        pcm = decode(packet.payload, "PCMU" if packet.payload_type == 0 else "PCMA")
        self._rx_buffer += pcm
        while len(self._rx_buffer) >= _FRAME:
            frame, self._rx_buffer = self._rx_buffer[:_FRAME], self._rx_buffer[_FRAME:]
            self._frame_in(frame)

    def _frame_in(self, frame: bytes) -> None:
        self.frames_received += 1
        if self.on_frame_received is not None:
            self.on_frame_received(frame)
        state = self._machine.state
        if state is LegState.BRIDGED:
            partner = self.bridged_with
            if partner is not None:
                partner._bridge_in.append(frame)
        elif state is LegState.ACTIVE and self.listener is not None:
            self.listener.feed(frame)

    # ------------------------------------------------------------ bridging

    async def resume_media(self) -> None:
        """Offer sendrecv again (a held leg that has just been bridged)."""
        await self._reinvite(sdp.Direction.SENDRECV)

    def join(self, other: SipCall) -> None:
        """Bridge bookkeeping (the switch checks both legs first)."""
        self._machine.move(LegState.BRIDGED)
        self._speech.fail_all(lambda _: BridgedError("the leg was bridged while speaking"))
        for playback in self._playbacks:
            playback.end("stopped")
        self._playbacks.clear()
        if self.listener is not None:
            self.listener.pause()
        self.bridged_with = other
        self.last_rx = self.host.clock.monotonic()


async def _quietly(work: object) -> None:
    assert asyncio.iscoroutine(work)
    with contextlib.suppress(TransactionTimeout, asyncio.CancelledError):
        await work
