"""SIP, SDP, RTP and digest wire formats — the parts peers get wrong in practice."""

from __future__ import annotations

import hashlib

import pytest

from callgate.channels.sip import sdp
from callgate.channels.sip.auth import authorization, parse_challenge
from callgate.channels.sip.message import NameAddr, SipParseError, parse
from callgate.channels.sip.refer import failure_for, sipfrag_status
from callgate.channels.sip.rtp import DtmfDetector, RtpPacket, RtpSender, event_payload

INVITE = (
    b"INVITE sip:+15559870000@127.0.0.1 SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKdef\r\n"
    b'f: "Smith, Jo" <sip:+15551230000@10.0.0.1>;tag=77\r\n'
    b"t: <sip:+15559870000@127.0.0.1>\r\n"
    b"i: abc@10.0.0.1\r\n"
    b"CSeq: 5 INVITE\r\n"
    b"Subject: folded\r\n  header\r\n"
    b"l: 4\r\n\r\nv=0\r\nextra"
)


def test_compact_headers_folding_and_content_length() -> None:
    message = parse(INVITE)
    assert message.method == "INVITE"
    assert message.call_id == "abc@10.0.0.1"
    assert message.branch == "z9hG4bKabc"
    assert len(message.get_all("Via")) == 2
    assert message.from_tag == "77"
    assert NameAddr.parse(message.get("From")).display == "Smith, Jo"
    assert message.get("Subject") == "folded header"
    assert message.body == b"v=0\r"
    assert message.cseq == (5, "INVITE")


@pytest.mark.parametrize(
    "broken",
    [
        b"INVITE SIP/2.0\r\n\r\n",
        INVITE.replace(b"CSeq: 5 INVITE", b"CSeq: 5 BYE"),
        INVITE.replace(b"i: abc@10.0.0.1\r\n", b""),
        INVITE.replace(b"l: 4", b"l: 400"),
        b"\xff\xfe garbage",
    ],
)
def test_what_we_cannot_act_on_is_a_parse_error(broken: bytes) -> None:
    with pytest.raises(SipParseError):
        parse(broken)


OFFER = b"""v=0\r
o=- 1 1 IN IP4 10.0.0.5\r
s=-\r
c=IN IP4 10.0.0.5\r
t=0 0\r
m=audio 4000 RTP/AVP 18 8 0 96\r
a=rtpmap:18 G729/8000\r
a=rtpmap:96 telephone-event/8000\r
a=sendonly\r
m=video 5000 RTP/AVP 99\r
"""


def test_sdp_picks_the_offerers_first_g711_and_its_event_type() -> None:
    media = sdp.parse(OFFER).choose()
    assert (media.host, media.port, media.codec, media.payload_type) == ("10.0.0.5", 4000, "PCMA", 8)
    assert media.event_pt == 96
    assert media.direction is sdp.Direction.SENDONLY
    assert media.direction.answer() is sdp.Direction.RECVONLY


@pytest.mark.parametrize(
    "body",
    [
        OFFER.replace(b" 8 0 96", b" 96"),  # no G.711
        OFFER.replace(b"m=audio 4000", b"m=audio 0"),
        OFFER.replace(b"c=IN IP4 10.0.0.5\r\n", b""),
        b"hello",
        OFFER.replace(b"c=IN IP4 10.0.0.5", b"c=IN IP4 not-an-address"),
    ],
)
def test_unusable_sdp_is_an_sdp_error(body: bytes) -> None:
    with pytest.raises(sdp.SdpError):
        sdp.parse(body).choose()


def test_rtp_numbering_is_continuous_and_dtmf_reported_once_per_press() -> None:
    sender = RtpSender(0)
    first = RtpPacket.parse(sender.packet(b"\xff" * 160))
    second = RtpPacket.parse(sender.packet(b"\xff" * 160))
    assert first.marker and not second.marker
    assert (second.sequence - first.sequence) % 65536 == 1
    assert (second.timestamp - first.timestamp) % 2**32 == 160
    detector = DtmfDetector()
    seen = []
    for ts, digit in [(100, "5"), (100, "5"), (100, "5"), (900, "#")]:
        packet = RtpPacket(101, 1, ts, 1, False, event_payload(digit, end=False, duration=160))
        seen.append(detector.feed(packet))
    assert seen == ["5", None, None, "#"]


def test_digest_answer_matches_rfc_2617_arithmetic() -> None:
    challenge = parse_challenge('Digest realm="trunk", nonce="n1", algorithm=MD5, opaque="o"')
    header = authorization(challenge, method="INVITE", uri="sip:+1555@trunk", username="u", password="p")

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    expected = md5(f"{md5('u:trunk:p')}:n1:{md5('INVITE:sip:+1555@trunk')}")
    assert f'response="{expected}"' in header
    assert 'opaque="o"' in header


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (486, "busy"),
        (600, "busy"),
        (408, "no-answer"),
        (480, "no-answer"),
        (403, "rejected"),
        (603, "rejected"),
        (404, "unreachable"),
    ],
)
def test_notify_outcomes(status: int, code: str) -> None:
    assert sipfrag_status(f"SIP/2.0 {status} Whatever\r\n".encode()) == status
    assert failure_for(status) == code
