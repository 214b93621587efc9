"""Outbound legs through `--sip-proxy` with digest auth: a sipp UAS plays the proxy/trunk."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

from callgate.channels.sip import SipConfig
from callgate.telephony.base import Destination, EndedReason

from .conftest import EndpointHarness
from .peers import SippResult, free_udp_port, listening, sipp


def digest_params(header: str) -> dict[str, str]:
    return {
        name.lower(): value for name, value in re.findall(r'(\w+)="?([^",]*)"?', header.partition(" ")[2])
    }


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


async def dial_through(sip: EndpointHarness, workdir: Path, script: str) -> SippResult:
    """Dial +15550002222 as +15559870000 through a sipp proxy/trunk running `script`, with
    credentials alice:s3cret; check the answer (PCMA), hang up; sipp's result."""
    proxy_port = free_udp_port()
    sip.endpoint.config = SipConfig(
        host="127.0.0.1", port=0, proxy=f"sip:alice:s3cret@127.0.0.1:{proxy_port}", hangup_delay_ms=0
    )
    proxy = asyncio.ensure_future(sipp(script, sip.port, uas=True, port=proxy_port, workdir=workdir))
    await listening(proxy_port)
    leg = await sip.endpoint.switch.dial(Destination.parse("+15550002222"), "+15559870000", timeout=5)
    assert leg.media is not None and leg.media.codec == "PCMA"
    await leg.hangup(str(EndedReason.ASSISTANT_ENDED_CALL))
    return await proxy


async def test_outbound_through_a_trunk_with_digest_auth_and_caller_id(
    sip: EndpointHarness, workdir: Path
) -> None:
    result = await dial_through(sip, workdir, "trunk_with_auth.xml")
    assert result.ok, result.errors  # the trunk verified our digest (401) and saw our caller ID


async def test_dialling_through_a_proxy_that_challenges_with_407(sip: EndpointHarness, workdir: Path) -> None:
    """The proxy answers our INVITE 407; we ACK it and send the INVITE again (new branch, next
    CSeq) with Proxy-Authorization for its realm and nonce, which it accepts; caller ID and the
    dialled number are on the wire; the answer (PCMA) is taken and our BYE ends the leg."""
    result = await dial_through(sip, workdir, "proxy_with_auth.xml")
    assert result.ok, result.errors  # the proxy saw credentials, our caller ID and the number

    invites = [message for message in result.received if message.startswith("INVITE ")]
    assert len(invites) == 2
    assert "Proxy-Authorization" not in invites[0]
    assert any(line.startswith("ACK ") for line in result.received)  # the 407 was ACKed
    cseqs = [re.search(r"^CSeq: (\d+) INVITE", invite, re.M) for invite in invites]
    assert [int(m.group(1)) for m in cseqs if m] == [1, 2]
    header = re.search(r"^Proxy-Authorization: (.*)$", invites[1], re.M)
    assert header is not None
    params = digest_params(header.group(1).strip())
    assert params["username"] == "alice"
    assert params["realm"] == "proxy.example"
    assert params["nonce"] == "pr0xyn0nce7"
    assert params["opaque"] == "0paque"
    # RFC 2617 §3.2.2 with qop=auth, computed here independently of callgate's code.
    ha1 = md5("alice:proxy.example:s3cret")
    ha2 = md5(f"INVITE:{params['uri']}")
    expected = md5(f"{ha1}:pr0xyn0nce7:{params['nc']}:{params['cnonce']}:auth:{ha2}")
    assert params["response"] == expected
    assert params["uri"] == invites[1].split(" ")[1]  # the digest covers the Request-URI we sent
