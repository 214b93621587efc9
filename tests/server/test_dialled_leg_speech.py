"""`callgate serve`'s `prepare_leg` hook (runtime.speech_wiring.dialled_leg_preparer) on a real SIP
endpoint: a leg dialled for a call (a warm transfer's supervisor, `connect`) gets a voice and an ear
with the calling document's speech settings; an inbound leg is left to the host's preparer."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from callgate.channels.sip import SipCall, SipConfig, SipEndpoint
from callgate.runtime.call_host import calling_ai
from callgate.runtime.speech_wiring import dialled_leg_preparer
from callgate.speech.backends import SpeechBackends
from callgate.speech.listener import SpeechListener
from callgate.swml.models import AI
from callgate.telephony.base import Destination, EndedReason
from callgate.telephony.clock import SystemClock
from sip_channel.peers import free_udp_port, rtp_party, sipp  # tests/ is on sys.path

pytestmark = pytest.mark.timeout(60)


def _voiced_frames(pcm: bytes) -> int:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    frames = samples[: samples.size // 160 * 160].reshape(-1, 160)
    return int((np.sqrt((frames**2).mean(axis=1)) > 300).sum())


async def test_a_leg_dialled_for_a_call_speaks_and_hears_with_the_documents_settings(tmp_path: Path) -> None:
    env = dict(os.environ)
    clock = SystemClock()
    inbound: list[SipCall] = []

    async def on_call(call: SipCall) -> None:
        inbound.append(call)  # the host's preparer would attach speech here, with the document
        await call.answer()
        while not call.ended:  # the caller hangs up
            await asyncio.sleep(0.05)

    prepare_leg = dialled_leg_preparer(SpeechBackends(env), clock, env)
    endpoint = SipEndpoint(
        SipConfig(host="127.0.0.1", port=0), clock=clock, on_call=on_call, prepare_leg=prepare_leg
    )
    await endpoint.start()
    callee_port = free_udp_port()
    try:
        async with rtp_party() as supervisor_media, rtp_party() as caller_media:
            supervisor = asyncio.ensure_future(
                sipp(
                    "callee_answers.xml",
                    endpoint.port,
                    uas=True,
                    port=callee_port,
                    keys={"rtp_port": str(supervisor_media.port)},
                    workdir=tmp_path,
                )
            )
            await asyncio.sleep(0.3)  # sipp is listening

            async def consult() -> SipCall:
                # The calling call's context, as CallHost sets it before the call runs.
                calling_ai.set(AI.model_validate({"params": {"end_of_speech_timeout": 1200}}))
                destination = Destination(kind="sip", value=f"sip:sam@127.0.0.1:{callee_port}")
                leg = await endpoint.switch.dial(destination, "+15559870000", timeout=5)
                assert isinstance(leg, SipCall)
                await leg.say("Hi Sam, I have Ann on hold: her internet has been down since Monday.")
                return leg

            leg = await asyncio.wait_for(asyncio.ensure_future(consult()), 30)
            await leg.hangup(str(EndedReason.ASSISTANT_FORWARDED_CALL))
            supervisor_result = await supervisor
            # An inbound leg arrives outside any call: the hook leaves it alone.
            caller = await sipp(
                "caller_hangs_up.xml",
                endpoint.port,
                keys={"rtp_port": str(caller_media.port)},
                workdir=tmp_path,
            )
    finally:
        await endpoint.stop()
    assert supervisor_result.ok, supervisor_result.errors
    assert _voiced_frames(supervisor_media.audio()) * 0.02 > 2.0  # the briefing, spoken over RTP
    assert isinstance(leg.listener, SpeechListener)  # and the leg can hear the supervisor's reply
    assert leg.listener.endpointer.hangover_frames == 1200 // 20  # the document's end_of_speech_timeout
    assert caller.ok, caller.errors
    assert len(inbound) == 1 and inbound[0].synthesizer is None and inbound[0].listener is None
