"""Outbound Twilio legs and joining two legs (`telephony.base.Switch`).

`dial()` creates a call through the REST API whose TwiML opens its own Media Stream back to us; the
leg is returned once that stream is up (the far end answered), so a warm transfer's consult agent
talks on it like on any leg. Twilio's status callbacks (busy, no-answer, failed) become `DialFailed`.

`bridge()` moves both legs into one Twilio `<Conference>` (named after the caller's CallSid) rather
than relaying the two Media Streams through callgate. Why: after a warm transfer callgate's agents
are out of the path for good (DESIGN §3), so there is no reason to keep carrying the audio — a
conference is mixed inside Twilio's media edge (no extra hop, no added latency or jitter, no
transcoding here), it survives a restart or drain of this process, and it costs us no sockets or
CPU for the rest of a possibly long call. A relay would be needed only to keep listening in, which
callgate does not do. The conference ends when either party leaves (`endConferenceOnExit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from callgate.channels.legs import check_bridgeable
from callgate.channels.twilio import twiml
from callgate.channels.twilio.call import TwilioCall, TwilioServices
from callgate.channels.twilio.config import STATUS_PATH
from callgate.telephony.base import Call, CallEnded, Destination, DialFailed, DialFailureCode
from callgate.telephony.clock import Deadline, within

log = logging.getLogger(__name__)

_STATUS_FAILURES: dict[str, DialFailureCode] = {
    "twilio-busy": "busy",
    "twilio-no-answer": "no-answer",
    "twilio-canceled": "no-answer",
    "twilio-failed": "rejected",
}


class TwilioSwitch:
    def __init__(self, services: TwilioServices, register: Callable[[TwilioCall], Awaitable[None]]) -> None:
        self._services = services
        self._register = register

    async def dial(self, destination: Destination, caller_id: str, timeout: float) -> TwilioCall:
        services = self._services
        call = TwilioCall(
            services, call_sid="", from_number=caller_id, to_number=destination.value, direction="outbound"
        )
        to = twiml.sip_uri(destination) if destination.kind == "sip" else destination.value
        document = services.stream_twiml(call)
        sid = await services.rest.create(
            to=to,
            from_=caller_id,
            twiml=document,
            status_callback=services.config.url(STATUS_PATH),
            timeout=max(1, int(timeout)),
        )
        call._call_id = sid
        await self._register(call)
        log.info("twilio: dialling %s as %s (%s)", to, caller_id, sid)
        try:
            await within(services.clock, timeout + services.config.stream_timeout, _answered(call))
        except Deadline:
            await _give_up(call)
            raise DialFailed("no-answer", f"not answered within {timeout:g}s") from None
        except asyncio.CancelledError:
            await _give_up(call)
            raise
        if call.ended:
            code = _STATUS_FAILURES.get(call.ended_cause or "", "rejected")
            raise DialFailed(code, f"Twilio: {(call.ended_cause or '').removeprefix('twilio-')}")
        call.twilio_status = "in-progress"
        await call.answer()
        return call

    async def bridge(self, a: Call, b: Call) -> None:
        if not isinstance(a, TwilioCall) or not isinstance(b, TwilioCall):
            raise TypeError("a Twilio switch can only bridge Twilio legs")
        check_bridgeable(a, b)
        room = twiml.conference(f"callgate-{a.call_id}")
        try:
            await a.move_to(room, "bridge")
        except DialFailed as failure:
            a._remote_end("bridge-failed")
            raise CallEnded(f"the caller's leg could not be moved: {failure}") from failure
        try:
            await b.move_to(room, "bridge")
        except DialFailed as failure:
            b._remote_end("bridge-failed")
            await self._bring_back(a)
            raise CallEnded(f"the other leg could not be moved: {failure}") from failure
        a.bridged()
        b.bridged()
        log.info("twilio: %s and %s joined in a conference", a.call_id, b.call_id)

    async def _bring_back(self, call: TwilioCall) -> None:
        """The caller was already moved but the other party is gone: back onto a stream of ours."""
        services = self._services
        try:
            await services.rest.redirect(call.call_id, services.stream_twiml(call), "bring back")
            await within(services.clock, services.config.stream_timeout, call.wait_linked())
        except (DialFailed, Deadline):
            call._remote_end("stream-lost")
        finally:
            call.moved_back()


async def _answered(call: TwilioCall) -> None:
    """Returns once the leg's stream is up (answered) or the leg ended (a failed dial)."""
    linked = asyncio.ensure_future(call.wait_linked())
    ended = asyncio.ensure_future(call.wait_ended())
    try:
        await asyncio.wait({linked, ended}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        linked.cancel()
        ended.cancel()


async def _give_up(call: TwilioCall) -> None:
    with contextlib.suppress(DialFailed, CallEnded):
        await call.hangup("dial-timeout")
