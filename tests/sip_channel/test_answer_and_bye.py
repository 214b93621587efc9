"""Answer, two-way audio, BYE both ways, CANCEL, DTMF — against sipp as the caller."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from callgate.channels.sip import SipCall
from callgate.speech.codecs import decode
from callgate.telephony.base import Dtmf, EndedReason, RemoteHangup

from .conftest import EndpointHarness
from .peers import RecordingListener, ToneSynthesizer, capture, free_udp_port, rtp_party, sipp, tone_share


async def test_answer_with_audio_both_ways_then_the_caller_hangs_up(
    sip: EndpointHarness, workdir: Path
) -> None:
    listener = RecordingListener()
    events: list[object] = []

    async def handler(call: SipCall) -> None:
        call.use_speech(ToneSynthesizer(1000), listener)
        await call.answer()
        await call.say("hello there caller")  # 600 ms of 1 kHz
        async for event in call.events():
            events.append(event)

    sip.handler = handler
    async with rtp_party(frequency=600) as party:
        run = asyncio.ensure_future(
            sipp("caller_hangs_up.xml", sip.port, keys={"rtp_port": str(party.port)}, workdir=workdir)
        )
        while party.remote is None and not run.done():
            await asyncio.sleep(0.02)
        sender = asyncio.ensure_future(party.send_tone(2.0))
        result = await run
        sender.cancel()
    assert result.ok, result.errors
    call = sip.calls[0]
    assert call.from_number == "+15551230000"
    assert call.to_number == "+15559870000"
    assert call.caller_name == "Alice Caller"
    assert events == [RemoteHangup(cause="hangup")]
    assert call.ended_reason == EndedReason.CUSTOMER_ENDED_CALL
    # The caller heard our 1 kHz voice; we heard the caller's 600 Hz.
    assert tone_share(party.audio(), 1000) > 0.2
    assert tone_share(listener.audio(), 600) > 0.5
    # One continuous RTP stream: sequence numbers and timestamps never jump.
    packets = [r.packet for r in party.received]
    assert len({p.ssrc for p in packets}) == 1
    for before, after in itertools.pairwise(packets):
        assert (after.sequence - before.sequence) % 65536 == 1
        assert (after.timestamp - before.timestamp) % 2**32 == 160


async def test_the_goodbye_arrives_before_our_bye(sip: EndpointHarness, workdir: Path) -> None:
    said = asyncio.Event()

    async def handler(call: SipCall) -> None:
        call.use_speech(ToneSynthesizer(1000), None)
        await call.answer()
        await asyncio.sleep(0.3)
        await call.say("goodbye and thank you for calling")  # 1.2 s of tone
        said.set()
        await call.hangup(str(EndedReason.ASSISTANT_ENDED_CALL))

    sip.handler = handler
    caller_port = free_udp_port()
    async with rtp_party() as party, capture([party.port, caller_port], workdir / "bye.pcap") as packets:
        result = await sipp(
            "agent_hangs_up.xml",
            sip.port,
            keys={"rtp_port": str(party.port)},
            port=caller_port,
            workdir=workdir,
        )
    assert result.ok, result.errors
    assert said.is_set()
    call = sip.calls[0]
    assert call.ended_reason == EndedReason.ASSISTANT_ENDED_CALL
    byes = [p for p in packets if p.dst_port == caller_port and p.payload.startswith(b"BYE ")]
    assert byes, "no BYE captured"
    voice = [p for p in packets if p.dst_port == party.port and tone_share(_pcmu(p.payload), 1000) > 0.5]
    assert len(voice) >= 55, f"only {len(voice)} voiced packets captured"  # 1.2 s = 60 frames
    assert voice[-1].at < byes[0].at
    # Nothing but silence after the last voiced frame, and the BYE waited the jitter allowance.
    assert byes[0].at - voice[-1].at >= 0.2


def _pcmu(rtp: bytes) -> bytes:
    return decode(rtp[12:], "PCMU")


async def test_cancel_while_ringing_ends_the_leg(sip: EndpointHarness, workdir: Path) -> None:
    events: list[object] = []

    async def handler(call: SipCall) -> None:
        async for event in call.events():  # never answers
            events.append(event)

    sip.handler = handler
    result = await sipp("cancel_ringing.xml", sip.port, keys={"rtp_port": "40000"}, workdir=workdir)
    assert result.ok, result.errors
    await asyncio.sleep(0.05)
    assert events == [RemoteHangup(cause="cancel")]
    assert sip.calls[0].ended
    assert sip.endpoint.active_calls == []


async def test_rfc4733_digits_become_dtmf_events(sip: EndpointHarness, workdir: Path) -> None:
    digits: list[str] = []

    async def handler(call: SipCall) -> None:
        await call.answer()
        async for event in call.events():
            if isinstance(event, Dtmf):
                digits.append(event.digits)
                if len(digits) == 2:
                    await call.hangup(str(EndedReason.ASSISTANT_ENDED_CALL))

    sip.handler = handler
    result = await sipp("dtmf.xml", sip.port, workdir=workdir)
    assert result.ok, result.errors
    assert digits == ["1", "#"]


async def test_options_answered_and_refused_while_draining(sip: EndpointHarness, workdir: Path) -> None:
    assert (await sipp("options.xml", sip.port, workdir=workdir)).ok
    sip.endpoint.draining = True
    result = await sipp("options_draining.xml", sip.port, workdir=workdir)
    assert result.ok, result.errors


async def test_a_request_in_an_unknown_dialog_gets_481(sip: EndpointHarness, workdir: Path) -> None:
    result = await sipp("unknown_dialog_bye.xml", sip.port, workdir=workdir)
    assert result.ok, result.errors
