"""RFC 3261 transaction behaviour seen from a raw UDP peer: our 200 OK is resent until the ACK,
a retransmitted INVITE gets the same answer again, and the 200 stops once ACKed."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from callgate.channels.sip import SipCall
from callgate.channels.sip.message import SipMessage, parse

from .conftest import EndpointHarness

INVITE = (
    "INVITE sip:agent@127.0.0.1:{port} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKraw1\r\n"
    "From: <sip:raw@127.0.0.1:{me}>;tag=raw1\r\n"
    "To: <sip:agent@127.0.0.1:{port}>\r\n"
    "Call-ID: raw-call-1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:raw@127.0.0.1:{me}>\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: {length}\r\n"
    "\r\n"
    "{body}"
)
BODY = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40020 RTP/AVP 0\r\n"


def _exchange(port: int) -> tuple[list[SipMessage], list[SipMessage]]:
    """INVITE, twice; collect answers for 1.6 s without ACKing; ACK; collect for 1.2 s more."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        me = sock.getsockname()[1]
        invite = INVITE.format(port=port, me=me, length=len(BODY), body=BODY)
        sock.sendto(invite.encode(), ("127.0.0.1", port))
        before = _collect(sock, 1.6)
        sock.sendto(invite.encode(), ("127.0.0.1", port))  # a retransmission of the same INVITE
        before += _collect(sock, 0.3)
        ok = next(m for m in before if m.status == 200)
        ack = (
            f"ACK sip:agent@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKraw2\r\n"
            f"From: <sip:raw@127.0.0.1:{me}>;tag=raw1\r\nTo: {ok.get('To')}\r\nCall-ID: raw-call-1\r\n"
            "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        )
        sock.sendto(ack.encode(), ("127.0.0.1", port))
        after = _collect(sock, 1.2)
        return before, after


def _collect(sock: socket.socket, seconds: float) -> list[SipMessage]:
    found = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        message = parse(data)
        if not message.is_request:
            found.append(message)
    return found


@pytest.mark.sip_config(t1=0.25)
async def test_our_200_is_resent_until_acked(sip: EndpointHarness) -> None:
    answered = asyncio.Event()

    async def handler(call: SipCall) -> None:
        await call.answer()
        answered.set()
        await call.wait_ended()

    sip.handler = handler
    before, after = await asyncio.to_thread(_exchange, sip.port)
    oks = [m for m in before if m.status == 200]
    assert [m.status for m in before[:2]] == [100, 180]
    assert len(oks) >= 3  # sent, then resent at T1 and 2·T1 (and once for the repeated INVITE)
    assert all(m.encode() == oks[0].encode() for m in oks)
    assert all(m.status != 200 for m in after)  # the ACK stopped them
    assert not sip.calls[0].ended
