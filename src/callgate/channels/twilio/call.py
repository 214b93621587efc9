"""One Twilio call leg behind `telephony.base.Call`: its Media Stream, its speech, its REST control.

Audio: `say()` synthesises at 8 kHz, sends the μ-law frames on the stream with a progress mark every
PROGRESS_FRAMES frames and a last mark after them, and returns when Twilio sends that last mark
back — Twilio's own word that the caller has heard the words (DESIGN §8, playout not hand-off).
The progress marks tell how much was played when `interrupt_speech()` (barge-in) sends `clear`:
the interrupted `say()` raises `SpeechInterrupted(heard)` with the words played by then.

Incoming `media` is decoded and fed to the Listener (not while held or bridged); `dtmf` becomes
`Dtmf` events; the stream's `stop` or a dropped socket is `RemoteHangup`, except while the call
is being moved by us (a transfer's `<Dial>`, a conference), where the stream ending is expected.

Control: `hangup()` waits `hangup_delay_ms` once, then completes the call through the REST API
(a call that is already over is fine) and closes the stream — closing a `<Connect><Stream>` ends the
TwiML, so the call ends even if the REST request failed. `transfer()` is a blind transfer: the call
gets `<Dial>` TwiML whose `<Number>`/`<Sip>` reports its progress to us; "answered" completes the
transfer, a `<Dial>` that ends without an answer brings the caller back on a new stream (our
`action` URL answers `<Connect><Stream>`), and `DialFailed` carries Twilio's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from callgate.channels.legs import EventFeed, LegIdentity, LegState, LegStateMachine
from callgate.channels.twilio import media, twiml
from callgate.channels.twilio.callbacks import CallbackRegistry
from callgate.channels.twilio.config import DIAL_ACTION_PATH, DIAL_STATUS_PATH, TwilioConfig
from callgate.channels.twilio.playback import StreamPlayback, fetch_wav, load_wav
from callgate.channels.twilio.rest import TwilioRest
from callgate.speech.ahead import SpeechAhead
from callgate.speech.audio import SourceFetcher
from callgate.speech.base import TELEPHONE_RATE, Listener, SpeechError, Synthesizer
from callgate.swaig.urlguard import Guard
from callgate.telephony.base import (
    CallEnded,
    CallEvent,
    Destination,
    DialFailed,
    Dtmf,
    RemoteHangup,
    SpeechInterrupted,
    Switch,
)
from callgate.telephony.clock import Clock, Deadline, within

log = logging.getLogger(__name__)

PROGRESS_FRAMES = 5  # a progress mark every 100 ms of speech: `heard` is exact to 100 ms
Direction = Literal["inbound", "outbound"]

# <Dial action> DialCallStatus → our failure code (DESIGN §3).
_DIAL_FAILURES: dict[str, Literal["busy", "no-answer", "rejected", "unreachable"]] = {
    "busy": "busy",
    "no-answer": "no-answer",
    "canceled": "no-answer",
    "failed": "rejected",
}


class StreamLink(Protocol):
    """The leg's current Media Stream connection (a websocket the endpoint accepted)."""

    stream_sid: str

    async def send(self, text: str) -> None: ...

    async def close(self) -> None: ...


@dataclass
class _Utterance:
    """One `say()` on the stream: how many frames were sent, how many Twilio has played."""

    number: int
    text: str
    total: int
    played: int = 0
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def heard(self) -> str:
        words = self.text.split()
        share = min(1.0, self.played / self.total) if self.total else 0.0
        return " ".join(words[: int(len(words) * share)])


@dataclass
class TwilioServices:
    """What every leg of one endpoint shares."""

    config: TwilioConfig
    rest: TwilioRest
    clock: Clock
    callbacks: CallbackRegistry
    # Stream TwiML for a leg (a new `<Connect><Stream>` with a fresh stream token), from the endpoint.
    stream_twiml: Callable[[TwilioCall], str]


class TwilioCall(LegIdentity):
    """A call on Twilio; `call_id` is Twilio's CallSid."""

    def __init__(
        self,
        services: TwilioServices,
        *,
        call_sid: str,
        from_number: str,
        to_number: str,
        caller_name: str = "",
        direction: Direction = "inbound",
    ) -> None:
        self._services = services
        self._call_id = call_sid
        self._from = from_number
        self._to = to_number
        self._caller_name = caller_name
        self.direction: Direction = direction
        self.leg = "caller" if direction == "inbound" else to_number
        self.hangup_delay_ms = services.config.hangup_delay_ms
        self._machine = LegStateMachine()
        self._feed = EventFeed()
        self._link: StreamLink | None = None
        self._linked = asyncio.Event()
        self._gone = asyncio.Event()
        self._synth: Synthesizer | None = None
        self._listener: Listener | None = None
        self._partials_while_speaking = False
        self._language: str | None = None
        self._say_lock = asyncio.Lock()
        self._ahead = SpeechAhead()
        self.fetch_source: SourceFetcher | None = None  # play() URLs; without one they play silence
        self._speaking: _Utterance | None = None
        self._marks: dict[str, asyncio.Future[None]] = {}
        self._mark_ids = itertools.count(1)
        self._playbacks: list[StreamPlayback] = []
        # While we move the call (transfer, conference) its stream ending is not the caller leaving.
        self._moving = False
        self.twilio_status = "ringing" if direction == "outbound" else "in-progress"
        self.ended_cause: str | None = None
        self.frames_sent = 0
        self.frames_received = 0
        self.on_frame_sent: Callable[[bytes], None] | None = None
        self.switch: Switch | None = None  # set by the endpoint: dials and bridges for this leg

    # ------------------------------------------------------------ wiring by the owner and the endpoint

    def use_speech(
        self,
        synthesizer: Synthesizer,
        listener: Listener | None,
        language: str | None = None,
        *,
        partials_while_speaking: bool = False,
    ) -> None:
        """Attach the leg's voice and ear (before `answer()`). With `partials_while_speaking` the ear
        makes partial transcripts (for barge-in's word count) while the agent speaks, only then."""
        self._synth = synthesizer
        self._listener = listener
        self._language = language
        self._partials_while_speaking = partials_while_speaking

    def use_source_fetcher(self, fetch: SourceFetcher) -> None:
        """How play() fetches http(s) sources: the call's owner passes one that applies the agent
        document's private-address guard (a channel knows nothing of documents)."""
        self.fetch_source = fetch

    def _partials(self, on: bool) -> None:
        switch = getattr(self._listener, "set_partials", None)  # speech.base.PartialsSwitch
        if switch is not None and self._partials_while_speaking:
            switch(on)

    def deliver(self, event: CallEvent) -> None:
        """The Listener's sink: its speech events go on `events()` (never while held)."""
        if self._machine.state in (LegState.ACTIVE, LegState.RINGING):
            self._feed.put(event)

    @property
    def linked(self) -> bool:
        return self._link is not None

    async def wait_linked(self) -> None:
        await self._linked.wait()

    async def wait_ended(self) -> None:
        await self._gone.wait()

    def attach(self, link: StreamLink) -> None:
        """A Media Stream for this call has started (the first, or a new one after a failed transfer)."""
        self._link = link
        self._linked.set()
        log.info("twilio call %s: stream %s connected", self.call_id, link.stream_sid)

    def on_message(self, message: media.Incoming) -> None:
        """One message from the leg's stream (the endpoint's reader calls this)."""
        if isinstance(message, media.Media):
            self.frames_received += 1
            listener = self._listener
            if (
                listener is not None
                and self._machine.state is LegState.ACTIVE
                and message.track != "outbound"
            ):
                listener.feed(media.to_pcm(message.payload))
        elif isinstance(message, media.Mark):
            self._mark_played(message.name)
        elif (
            isinstance(message, media.DtmfDigit) and message.digit and self._machine.state is LegState.ACTIVE
        ):
            self._feed.put(Dtmf(message.digit))

    def stream_ended(self, link: StreamLink, cause: str) -> None:
        """The stream stopped (Twilio's `stop`) or its socket dropped."""
        if self._link is not link:
            return  # an old stream closing after a new one took over
        self._link = None
        self._linked.clear()
        self._fail_audio(CallEnded(f"the stream ended ({cause})"))
        if self._moving or self._machine.state in (LegState.BRIDGED, LegState.ENDED):
            return
        log.info("twilio call %s: the caller left (%s)", self.call_id, cause)
        self._remote_end(cause)

    def status_changed(self, status: str) -> None:
        """A status callback: a call completed on Twilio's side ends ours."""
        self.twilio_status = status
        if status not in ("completed", "busy", "failed", "no-answer", "canceled"):
            return
        if self._machine.state is LegState.BRIDGED:
            self._machine.move(LegState.ENDED)  # the conference is over: nothing of ours to do
            self._gone.set()
        elif not self._moving:
            self._remote_end(f"twilio-{status}")

    def _remote_end(self, cause: str) -> None:
        if self._machine.state is LegState.ENDED:
            return
        self._machine.move(LegState.ENDED)
        self._gone.set()
        self.ended_cause = cause
        self._fail_audio(CallEnded("the caller hung up"))
        self._feed.put(RemoteHangup(cause="hangup" if cause in ("stop", "twilio-completed") else cause))
        self._feed.close(drop_pending=False)
        self._close_listener()

    # ------------------------------------------------------------ the Call protocol

    async def answer(self) -> None:
        """Twilio answered when it ran our `<Connect><Stream>`: the leg is live once streaming."""
        if self.ended:
            raise CallEnded("the call has ended")
        if self._machine.state is LegState.RINGING:
            self._machine.move(LegState.ACTIVE)

    def _activate(self) -> None:
        if self._machine.state is LegState.RINGING:
            self._machine.move(LegState.ACTIVE)

    async def say(self, text: str) -> None:
        if not self.ended:
            self._activate()
        self._machine.require_usable(allow_held=False)
        if self._synth is None:
            raise SpeechError("no synthesizer")
        if not text.strip():
            return
        async with self._say_lock:
            self._machine.require_usable(allow_held=False)
            clears = self._ahead.clears
            pcm = await self._ahead.take(text, self._synthesize)
            self._machine.require_usable(allow_held=False)
            if self._ahead.clears != clears:
                raise SpeechInterrupted("")  # barged in while its audio was being made: none of it plays
            await self._speak(text, media.to_mulaw_frames(pcm))

    async def _speak(self, text: str, frames: list[bytes]) -> None:
        utterance = _Utterance(number=next(self._mark_ids), text=text, total=len(frames))
        self._speaking = utterance
        self._partials(True)
        try:
            link = self._require_link()
            for index, frame in enumerate(frames, start=1):
                await self._send(link, media.media_message(link.stream_sid, frame))
                self._count_sent(frame)
                if index % PROGRESS_FRAMES == 0 and index < len(frames):
                    await self._send(
                        link, media.mark_message(link.stream_sid, f"say{utterance.number}:{index}")
                    )
            await self._send(link, media.mark_message(link.stream_sid, f"say{utterance.number}:end"))
            await utterance.done
        finally:
            self._partials(False)
            if self._speaking is utterance:
                self._speaking = None

    def _count_sent(self, frame: bytes) -> None:
        self.frames_sent += 1
        if self.on_frame_sent is not None:
            self.on_frame_sent(frame)

    def prefetch_speech(self, text: str) -> None:
        """A sentence the agent will say soon: synthesise it now, while earlier ones play."""
        if self._synth is not None and not self.ended and text.strip():
            self._ahead.start(text, self._synthesize)

    async def _synthesize(self, text: str) -> bytes:
        if self._synth is None:
            raise SpeechError("no synthesizer")
        return await self._synth.synthesize(text, sample_rate=TELEPHONE_RATE, language=self._language)

    def interrupt_speech(self) -> None:
        """Barge-in: stop the current `say()` now (Twilio's `clear`); nothing if nothing is playing."""
        self._ahead.clear()
        utterance = self._speaking
        if utterance is None or utterance.done.done():
            return
        utterance.done.set_exception(SpeechInterrupted(heard=utterance.heard()))
        self._speaking = None
        self._send_soon_clear()

    def _send_soon_clear(self) -> None:
        link = self._link
        if link is not None:
            task = asyncio.ensure_future(self._send_quietly(link, media.clear_message(link.stream_sid)))
            task.add_done_callback(lambda _: None)

    async def _send_quietly(self, link: StreamLink, text: str) -> None:
        with contextlib.suppress(Exception):
            await link.send(text)

    def _mark_played(self, name: str) -> None:
        waiter = self._marks.pop(name, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
            return
        utterance = self._speaking
        prefix, _, position = name.partition(":")
        if utterance is None or prefix != f"say{utterance.number}":
            return  # a mark of audio that was cleared: nothing waits for it any more
        if position == "end":
            utterance.played = utterance.total
            if not utterance.done.done():
                utterance.done.set_result(None)
        elif position.isdigit():
            utterance.played = max(utterance.played, int(position))

    def _fail_audio(self, error: Exception) -> None:
        self._ahead.clear()
        utterance, self._speaking = self._speaking, None
        if utterance is not None and not utterance.done.done():
            utterance.done.set_exception(error)
            utterance.done.exception()  # retrieved: a say() may not be awaiting it any more
        marks, self._marks = self._marks, {}
        for waiter in marks.values():
            if not waiter.done():
                waiter.set_exception(error)
                waiter.exception()

    def _require_link(self) -> StreamLink:
        if self.ended:
            raise CallEnded("the call has ended")
        if self._link is None:
            raise CallEnded("the call has no media stream")
        return self._link

    async def _send(self, link: StreamLink, text: str) -> None:
        try:
            await link.send(text)
        except Exception as exc:  # a closed socket: the disconnect handler ends the leg
            raise CallEnded(f"the stream is closed ({type(exc).__name__})") from exc

    async def _send_chunk(self, frames: list[bytes]) -> None:
        """Frames then a mark; returns when the mark came back (playback pacing)."""
        link = self._require_link()
        name = f"play{next(self._mark_ids)}"
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._marks[name] = waiter
        try:
            for frame in frames:
                await self._send(link, media.media_message(link.stream_sid, frame))
                self._count_sent(frame)
            await self._send(link, media.mark_message(link.stream_sid, name))
            await waiter
        finally:
            self._marks.pop(name, None)

    async def _clear(self) -> None:
        link = self._link
        if link is not None:
            await self._send_quietly(link, media.clear_message(link.stream_sid))

    async def play(self, source: str, loop: bool = False, *, guard: Guard | None = None) -> StreamPlayback:
        if not self.ended:
            self._activate()
        self._machine.require_usable(allow_held=True)
        fetch = self.fetch_source
        if source.startswith(("http://", "https://")) and fetch is not None:

            async def load() -> list[bytes]:
                return media.to_mulaw_frames(await fetch_wav(source, fetch))

            playback = StreamPlayback(source, [], loop, self._clear, load=load)
        else:
            pcm = load_wav(source)
            if pcm is None:
                log.warning(
                    "twilio call %s: cannot play %r (not a local 16-bit WAV): silence instead",
                    self.call_id,
                    source,
                )
            playback = StreamPlayback(source, media.to_mulaw_frames(pcm) if pcm else [], loop, self._clear)
        self._playbacks.append(playback)
        playback.start(self._send_chunk)
        return playback

    async def hold(self) -> None:
        if self.held:
            return
        self._activate()
        self._machine.move(LegState.HELD)
        self.interrupt_speech()
        if self._listener is not None:
            self._listener.pause()

    async def unhold(self) -> None:
        if self.ended:
            raise CallEnded("the call has ended")
        if not self.held:
            return
        self._machine.move(LegState.ACTIVE)
        if self._listener is not None:
            self._listener.resume()

    async def _stop_playbacks(self) -> None:
        playbacks, self._playbacks = self._playbacks, []
        for playback in playbacks:
            await playback.stop()

    async def hangup(self, reason: str) -> None:
        """Idempotent: after the jitter allowance, complete the call on Twilio and close the stream."""
        if self.ended:
            return
        if self._machine.state is not LegState.RINGING and self.hangup_delay_ms > 0:
            await self._services.clock.sleep(self.hangup_delay_ms / 1000)
            if self.ended:
                return
        self._machine.move(LegState.ENDED)
        self._gone.set()
        self.ended_cause = reason
        await self._stop_playbacks()
        self._fail_audio(CallEnded("the call has ended"))
        self._feed.close(drop_pending=False)
        self._close_listener()
        try:
            ended_now = await self._services.rest.end(
                self.call_id, ringing=self.twilio_status in ("queued", "ringing")
            )
            log.info(
                "twilio call %s: hung up (%s)%s",
                self.call_id,
                reason,
                "" if ended_now else ", was already over",
            )
        except DialFailed as failure:
            # Closing the stream below ends `<Connect><Stream>` and with it the call.
            log.warning("twilio call %s: REST hang-up failed (%s); closing the stream", self.call_id, failure)
        await self._close_link()

    async def _close_link(self) -> None:
        link, self._link = self._link, None
        self._linked.clear()
        if link is not None:
            with contextlib.suppress(Exception):
                await link.close()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            task = asyncio.ensure_future(listener.aclose())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def events(self) -> AsyncIterator[CallEvent]:
        return aiter(self._feed)

    # ------------------------------------------------------------ blind transfer (<Dial>)

    async def transfer(self, destination: Destination) -> None:
        if not self.ended:
            self._activate()
        self._machine.require_usable(allow_held=True)
        services = self._services
        if self.hangup_delay_ms > 0:
            await services.clock.sleep(self.hangup_delay_ms / 1000)
        self._machine.require_usable(allow_held=True)
        state = {"answered": False}
        pending = services.callbacks.open(
            answer=lambda form: twiml.hangup() if state["answered"] else services.stream_twiml(self)
        )
        config = services.config
        document = twiml.dial(
            destination,
            caller_id=destination.caller_id or self.from_number,
            status_url=config.url(f"{DIAL_STATUS_PATH}/{pending.token}"),
            action_url=config.url(f"{DIAL_ACTION_PATH}/{pending.token}"),
            timeout=int(config.ring_timeout),
        )
        self._moving = True
        try:
            await self._stop_playbacks()
            await services.rest.redirect(self.call_id, document, "transfer")
            self._fail_audio(CallEnded("the call is being transferred"))
            try:
                outcome = await within(
                    services.clock, config.transfer_timeout, self._dial_outcome(pending.queue)
                )
            except Deadline:
                outcome = "no-answer"
                # Still ringing on Twilio's side: bring the caller back to us.
                await services.rest.redirect(self.call_id, services.stream_twiml(self), "transfer")
            if outcome == "answered":
                state["answered"] = True
                self._machine.move(LegState.ENDED)
                self._gone.set()
                self.ended_cause = "transferred"
                self._feed.close(drop_pending=False)
                self._close_listener()
                await self._close_link()
                return
            if outcome == "gone":
                raise CallEnded("the caller hung up during the transfer")
            # The <Dial> ended without an answer: our action URL brought the caller back on a new stream.
            try:
                await within(services.clock, config.stream_timeout, self._linked.wait())
            except Deadline:
                self._remote_end("stream-lost")
                raise CallEnded("the caller did not come back from the failed transfer") from None
            code = _DIAL_FAILURES.get(outcome, "rejected")
            raise DialFailed(code, f"Twilio <Dial>: {outcome}")
        finally:
            self._moving = False
            services.callbacks.close(pending.token)

    async def _dial_outcome(self, queue: asyncio.Queue[tuple[str, dict[str, str]]]) -> str:
        """ "answered", a DialCallStatus (busy, no-answer, failed, canceled), or "gone" (caller left)."""
        while True:
            kind, form = await queue.get()
            if kind == "status" and form.get("CallStatus") in ("in-progress", "answered"):
                return "answered"
            if kind == "action":
                status = form.get("DialCallStatus", "failed")
                if status in ("completed", "answered"):
                    return "answered"
                if form.get("CallStatus") == "completed":
                    return "gone"
                return status

    # ------------------------------------------------------------ conference (bridge) and dial support

    async def move_to(self, document: str, what: str) -> None:
        """Hand the call to other TwiML (a conference); its stream ending is then expected."""
        self._moving = True
        try:
            await self._stop_playbacks()
            self._fail_audio(CallEnded("the call left the stream"))
            await self._services.rest.redirect(self.call_id, document, what)
        except BaseException:
            self._moving = False
            raise

    def bridged(self) -> None:
        """The call is in the conference: callgate is out of its path for good."""
        if self._machine.state in (LegState.ACTIVE, LegState.HELD):
            self._machine.move(LegState.BRIDGED)
        if self._listener is not None:
            self._listener.pause()
        self._feed.close(drop_pending=False)
        self._close_listener()

    def moved_back(self) -> None:
        self._moving = False


StreamTwiml = Callable[[TwilioCall], str]
OnCall = Callable[[TwilioCall], Awaitable[None]]
