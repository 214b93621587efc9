"""Hold/unhold, REFER outcomes, dial + bridge, vanished peers, bad input, BYE retransmission."""

from __future__ import annotations

import asyncio
import itertools
import socket
from pathlib import Path

import pytest

from callgate.channels.legs import HeldError
from callgate.channels.sip import SipCall
from callgate.channels.sip.rtp import DtmfDetector
from callgate.telephony.base import (
    Destination,
    DialFailed,
    EndedReason,
    MediaTimeout,
    RemoteHangup,
)

from .conftest import EndpointHarness
from .peers import (
    RecordingListener,
    SippResult,
    ToneSynthesizer,
    capture,
    free_udp_port,
    listening,
    rtp_party,
    sipp,
    tone_share,
    until,
)


async def test_hold_and_unhold_by_reinvite_each_acked(sip: EndpointHarness, workdir: Path) -> None:
    listener = RecordingListener()
    refused: list[Exception] = []

    async def handler(call: SipCall) -> None:
        call.use_speech(ToneSynthesizer(), listener)
        await call.answer()
        await call.hold()
        try:
            await call.say("can you hear me")
        except HeldError as error:
            refused.append(error)
        await asyncio.sleep(0.3)
        await call.unhold()
        await call.hangup(str(EndedReason.ASSISTANT_ENDED_CALL))

    sip.handler = handler
    result = await sipp("hold_unhold.xml", sip.port, keys={"rtp_port": "40002"}, workdir=workdir)
    assert result.ok, result.errors  # sipp insists on the ACK after each re-INVITE 2xx
    assert len(refused) == 1
    assert listener.pauses == 1 and not listener.paused


async def test_refer_followed_by_a_200_notify_completes_and_we_hang_up(
    sip: EndpointHarness, workdir: Path
) -> None:
    done: list[str] = []

    async def handler(call: SipCall) -> None:
        await call.answer()
        await call.transfer(Destination.parse("sip:desk@127.0.0.1:5999"))
        done.append("completed")

    sip.handler = handler
    result = await sipp("refer_accepted.xml", sip.port, keys={"rtp_port": "40004"}, workdir=workdir)
    assert result.ok, result.errors
    call = sip.calls[0]
    assert done == ["completed"]
    assert call.ended_reason == EndedReason.ASSISTANT_FORWARDED_CALL
    assert call.transferred_to == "sip:desk@127.0.0.1:5999"


@pytest.mark.parametrize(
    ("scenario", "code"),
    [("refer_declined.xml", "rejected"), ("refer_busy.xml", "busy"), ("refer_silent.xml", "timeout")],
)
@pytest.mark.sip_config(refer_timeout=1.0)
async def test_refer_failures_map_to_design_outcomes(
    sip: EndpointHarness, workdir: Path, scenario: str, code: str
) -> None:
    failures: list[DialFailed] = []

    async def handler(call: SipCall) -> None:
        await call.answer()
        try:
            await call.transfer(Destination.parse("+15550002222"))
        except DialFailed as failure:
            failures.append(failure)
        await call.hangup(str(EndedReason.ASSISTANT_ENDED_CALL))  # the call goes on after a failure

    sip.handler = handler
    result = await sipp(scenario, sip.port, keys={"rtp_port": "40006"}, workdir=workdir)
    assert result.ok, result.errors
    assert [f.code for f in failures] == [code]


async def test_dial_and_bridge_carry_audio_both_ways(sip: EndpointHarness, workdir: Path) -> None:
    callee_port = free_udp_port()
    bridged = asyncio.Event()

    async def handler(caller: SipCall) -> None:
        await caller.answer()
        callee = await sip.endpoint.switch.dial(
            Destination.parse(f"sip:desk@127.0.0.1:{callee_port}"), "+15559870000", timeout=5
        )
        await sip.endpoint.switch.bridge(caller, callee)
        bridged.set()

    sip.handler = handler
    async with rtp_party(frequency=600) as caller_media, rtp_party(frequency=1400) as callee_media:
        callee = asyncio.ensure_future(
            sipp(
                "callee_answers.xml",
                sip.port,
                uas=True,
                port=callee_port,
                keys={"rtp_port": str(callee_media.port)},
                workdir=workdir,
            )
        )
        await listening(callee_port)
        caller = asyncio.ensure_future(
            sipp("caller_hangs_up.xml", sip.port, keys={"rtp_port": str(caller_media.port)}, workdir=workdir)
        )
        await asyncio.wait_for(bridged.wait(), 10)
        await asyncio.sleep(0.1)
        senders = [
            asyncio.ensure_future(caller_media.send_tone(2.0)),
            asyncio.ensure_future(callee_media.send_tone(2.0)),
        ]
        caller_result, callee_result = await asyncio.gather(caller, callee)
        for task in senders:
            task.cancel()
    assert caller_result.ok, caller_result.errors
    assert callee_result.ok, callee_result.errors  # the callee got our BYE when the caller left
    assert tone_share(caller_media.audio(), 1400) > 0.3
    assert tone_share(callee_media.audio(), 600) > 0.3
    legs = sip.endpoint.active_calls
    assert legs == []


async def test_dial_failures(sip: EndpointHarness, workdir: Path) -> None:
    callee_port = free_udp_port()
    result_box: list[DialFailed] = []

    async def dial() -> None:
        try:
            await sip.endpoint.switch.dial(
                Destination.parse(f"sip:desk@127.0.0.1:{callee_port}"), "+15559870000", timeout=5
            )
        except DialFailed as failure:
            result_box.append(failure)

    callee = asyncio.ensure_future(
        sipp("callee_busy.xml", sip.port, uas=True, port=callee_port, workdir=workdir)
    )
    await listening(callee_port)
    await dial()
    assert (await callee).ok
    assert [f.code for f in result_box] == ["busy"]
    with pytest.raises(DialFailed) as unreachable:
        await sip.endpoint.switch.dial(Destination.parse("+15550002222"), "+15559870000", timeout=1)
    assert unreachable.value.code == "unreachable"  # a number needs --sip-proxy


async def _dial_given_up_while_ringing(
    sip: EndpointHarness, workdir: Path, script: str, keys: dict[str, str] | None = None
) -> SippResult:
    """Dial a sipp callee running `script`; once it has sent 180, the dialling task is cancelled
    (what a warm transfer does when the caller hangs up on hold). sipp's result, once it ends."""
    callee_port = free_udp_port()
    callee = asyncio.ensure_future(
        sipp(script, sip.port, uas=True, port=callee_port, keys=keys, workdir=workdir, timeout=15)
    )
    await listening(callee_port)
    dial = asyncio.ensure_future(
        sip.endpoint.switch.dial(
            Destination.parse(f"sip:desk@127.0.0.1:{callee_port}"), "+15559870000", timeout=30
        )
    )
    trace = workdir / f"{script}.{callee_port}.messages.log"
    await until(lambda: trace.exists() and "180 Ringing" in trace.read_text(), 10, "the callee ringing")
    dial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await dial
    return await callee


async def test_a_dial_abandoned_while_ringing_acks_the_487(sip: EndpointHarness, workdir: Path) -> None:
    """The INVITE transaction outlives the cancelled dial: the 487 after our CANCEL is ACKed
    (RFC 3261 §17.1.1.3); the callee would otherwise resend it for 32 s and log a failed call."""
    result = await _dial_given_up_while_ringing(sip, workdir, "callee_rings_forever.xml")
    assert result.ok, result.errors
    assert [m.split(" ")[0] for m in result.received] == ["INVITE", "CANCEL", "ACK"]


async def test_a_2xx_crossing_our_cancel_is_acked_and_hung_up(sip: EndpointHarness, workdir: Path) -> None:
    """The callee answered as the CANCEL left: nobody wants the call any more, so it gets our ACK
    and then our BYE, not a connected line that nobody is on."""
    async with rtp_party() as party:
        result = await _dial_given_up_while_ringing(
            sip, workdir, "callee_answers_as_we_cancel.xml", {"rtp_port": str(party.port)}
        )
    assert result.ok, result.errors
    assert [m.split(" ")[0] for m in result.received] == ["INVITE", "CANCEL", "ACK", "BYE"]
    assert sip.endpoint.active_calls == []


async def test_a_dialled_party_that_only_rings_is_cancelled_at_the_timeout(
    sip: EndpointHarness, workdir: Path
) -> None:
    callee_port = free_udp_port()
    callee = asyncio.ensure_future(
        sipp("callee_rings_forever.xml", sip.port, uas=True, port=callee_port, workdir=workdir)
    )
    await listening(callee_port)
    with pytest.raises(DialFailed) as rang_out:
        await sip.endpoint.switch.dial(
            Destination.parse(f"sip:desk@127.0.0.1:{callee_port}"), "+15559870000", timeout=1
        )
    assert rang_out.value.code == "no-answer"
    # sipp saw our CANCEL, answered it and the INVITE with 487, and got the ACK.
    assert (await callee).ok
    assert sip.endpoint.active_calls == []


@pytest.mark.sip_config(media_timeout=1.0)
async def test_a_caller_whose_media_stops_is_hung_up(sip: EndpointHarness, workdir: Path) -> None:
    events: list[object] = []

    async def handler(call: SipCall) -> None:
        await call.answer()
        async for event in call.events():
            events.append(event)

    sip.handler = handler
    async with rtp_party(frequency=600) as party:
        run = asyncio.ensure_future(
            sipp("caller_vanishes.xml", sip.port, keys={"rtp_port": str(party.port)}, workdir=workdir)
        )
        while party.remote is None and not run.done():
            await asyncio.sleep(0.02)
        await party.send_tone(0.5)  # then silence on the wire: the peer is gone
        result = await run
    assert result.ok, result.errors  # sipp received our BYE
    assert events == [MediaTimeout()]
    call = sip.calls[0]
    assert call.ended_reason == EndedReason.CUSTOMER_ENDED_CALL
    assert call.ended_detail == "media-timeout"


async def test_garbage_and_bad_sdp_are_refused_while_another_call_goes_on(
    sip: EndpointHarness, workdir: Path
) -> None:
    listener = RecordingListener()
    events: list[object] = []

    async def handler(call: SipCall) -> None:
        call.use_speech(ToneSynthesizer(), listener)
        await call.answer()
        async for event in call.events():
            events.append(event)

    sip.handler = handler
    async with rtp_party(frequency=600) as party:
        good = asyncio.ensure_future(
            sipp("caller_hangs_up.xml", sip.port, keys={"rtp_port": str(party.port)}, workdir=workdir)
        )
        while party.remote is None and not good.done():
            await asyncio.sleep(0.02)
        sender = asyncio.ensure_future(party.send_tone(2.5))
        replies = await asyncio.to_thread(_send_garbage, sip.port)
        bad_sdp = await sipp("bad_sdp.xml", sip.port, keys={"rtp_port": "40008"}, workdir=workdir)
        good_result = await good
        sender.cancel()
    assert replies[0].startswith(b"SIP/2.0 400 ")
    assert b"Call-ID: garbage-1" in replies[0]
    assert replies[1].startswith(b"SIP/2.0 400 ")  # a CSeq that is not a number
    assert bad_sdp.ok, bad_sdp.errors  # 488, and the ACK absorbed
    assert good_result.ok, good_result.errors
    assert events == [RemoteHangup(cause="hangup")]
    assert tone_share(listener.audio(), 600) > 0.5
    assert len(sip.calls) == 1  # neither bad request became a call


def _send_garbage(port: int) -> list[bytes]:
    requests = [
        b"INVITE sip:agent@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKg1\r\n"
        b"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:agent@127.0.0.1>\r\nCall-ID: garbage-1\r\n"
        b"CSeq: 1 INVITE\r\nthis line has no colon\r\nContent-Length: 0\r\n\r\n",
        b"OPTIONS sip:agent@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKg2\r\n"
        b"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:agent@127.0.0.1>\r\nCall-ID: garbage-2\r\n"
        b"CSeq: one OPTIONS\r\nContent-Length: 0\r\n\r\n",
    ]
    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.bind(("127.0.0.1", 0))
        for request in requests:
            sock.sendto(request, ("127.0.0.1", port))
            replies.append(sock.recv(4096))
    return replies


async def test_our_bye_is_retransmitted_until_answered(sip: EndpointHarness, workdir: Path) -> None:
    async def handler(call: SipCall) -> None:
        await call.answer()
        await call.hangup(str(EndedReason.ASSISTANT_ENDED_CALL))

    sip.handler = handler
    caller_port = free_udp_port()
    async with capture([caller_port], workdir / "bye.pcap") as packets:
        result = await sipp(
            "bye_unanswered_once.xml", sip.port, port=caller_port, keys={"rtp_port": "40010"}, workdir=workdir
        )
    assert result.ok, result.errors
    byes = [p for p in packets if p.dst_port == caller_port and p.payload.startswith(b"BYE ")]
    assert len(byes) >= 2
    assert byes[0].payload == byes[1].payload  # the same transaction, resent


async def test_dialling_with_an_extension_presses_its_digits_after_the_answer(
    sip: EndpointHarness, workdir: Path
) -> None:
    callee_port = free_udp_port()
    async with rtp_party() as party:
        callee = asyncio.ensure_future(
            sipp(
                "callee_answers.xml",
                sip.port,
                uas=True,
                port=callee_port,
                keys={"rtp_port": str(party.port)},
                workdir=workdir,
            )
        )
        await listening(callee_port)
        destination = Destination(kind="sip", value=f"sip:desk@127.0.0.1:{callee_port}", extension="12w#")
        leg = await sip.endpoint.switch.dial(destination, "+15559870000", timeout=5)
        await leg.hangup(str(EndedReason.ASSISTANT_ENDED_CALL))
        result = await callee
    assert result.ok, result.errors
    detector = DtmfDetector()
    events = [r.packet for r in party.received if r.packet.payload_type == 101]
    pressed = [digit for packet in events if (digit := detector.feed(packet)) is not None]
    assert pressed == ["1", "2", "#"]
    ends = [p for p in events if p.payload[1] & 0x80]
    assert len(ends) == 9  # each key's end packet, three times
    packets = [r.packet for r in party.received]
    for before, after in itertools.pairwise(packets):
        assert (after.sequence - before.sequence) % 65536 == 1  # one stream, audio and events


@pytest.mark.sip_config(media_timeout=0.8)
async def test_a_caller_holding_us_is_not_a_vanished_peer(sip: EndpointHarness, workdir: Path) -> None:
    events: list[object] = []

    async def handler(call: SipCall) -> None:
        await call.answer()
        async for event in call.events():
            events.append(event)

    sip.handler = handler
    result = await sipp("caller_holds_us.xml", sip.port, keys={"rtp_port": "40022"}, workdir=workdir)
    assert result.ok, result.errors  # we answered recvonly to sendonly, sendrecv to sendrecv
    assert events == [RemoteHangup(cause="hangup")]  # 1.5 s without RTP while held: no MediaTimeout


async def test_a_late_offer_is_answered_in_the_ack(sip: EndpointHarness, workdir: Path) -> None:
    async def handler(call: SipCall) -> None:
        call.use_speech(ToneSynthesizer(1000), None)
        await call.answer()
        await until(lambda: call.media is not None)  # the ACK with the caller's answer arrived
        await call.say("hello there")
        await call.wait_ended()

    sip.handler = handler
    async with rtp_party() as party:
        result = await sipp("late_offer.xml", sip.port, keys={"rtp_port": str(party.port)}, workdir=workdir)
    assert result.ok, result.errors
    assert {r.packet.payload_type for r in party.received} == {8}  # the PCMA the caller chose
    assert tone_share(party.audio(payload_type=8), 1000) > 0.2
