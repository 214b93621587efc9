"""baresip, a real softphone, as the far end: it answers our INVITE, talks, and follows our REFER."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from callgate.telephony.base import Destination, EndedReason

from .conftest import EndpointHarness
from .peers import RecordingListener, free_udp_port, listening, require, sipp, tone_share

BARESIP_TONE = 700  # baresip's ausine source


def _free_port_both() -> int:
    """A port free for UDP and TCP (baresip listens on both)."""
    import socket

    while True:
        port = free_udp_port()
        with socket.socket() as tcp:
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


@contextlib.asynccontextmanager
async def baresip(workdir: Path) -> AsyncIterator[str]:
    """A headless baresip answering automatically at the yielded SIP URI (under `timeout`)."""
    port = _free_port_both()
    home = workdir / "baresip"
    home.mkdir()
    (home / "config").write_text(
        f"""poll_method epoll
sip_listen 127.0.0.1:{port}
audio_player aufile,{home / "heard.wav"}
audio_source ausine,{BARESIP_TONE}
audio_alert aufile,/dev/null
ausrc_srate 48000
ausrc_channels 2
auplay_srate 48000
module_path /usr/lib/baresip/modules
module g711.so
module ausine.so
module aufile.so
module_app account.so
module_app menu.so
"""
    )
    (home / "accounts").write_text(f"<sip:baresip@127.0.0.1:{port}>;regint=0;answermode=auto\n")
    process = await asyncio.create_subprocess_exec(
        "timeout",
        "40",
        require("baresip"),
        "-f",
        str(home),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), 10)
            if not line:
                raise RuntimeError("baresip exited before it was ready")
            if b"baresip is ready" in line:
                break
        drain = asyncio.ensure_future(process.stdout.read())
        yield f"sip:baresip@127.0.0.1:{port}"
        drain.cancel()
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()


async def test_baresip_answers_talks_and_follows_our_refer(sip: EndpointHarness, workdir: Path) -> None:
    target_port = free_udp_port()
    async with baresip(workdir) as phone:
        target = asyncio.ensure_future(
            sipp("transfer_target.xml", sip.port, uas=True, port=target_port, workdir=workdir, timeout=15)
        )
        await listening(target_port)
        leg = await sip.endpoint.switch.dial(Destination.parse(phone), "+15559870000", timeout=10)
        listener = RecordingListener()
        leg.use_speech(None, listener)
        await asyncio.sleep(1.0)  # baresip's sine tone reaches us
        await leg.transfer(Destination.parse(f"sip:desk@127.0.0.1:{target_port}"))
        result = await target
    assert result.ok, result.errors  # baresip really called the transfer target, and it hung up
    assert leg.ended_reason == EndedReason.ASSISTANT_FORWARDED_CALL
    assert tone_share(listener.audio(), BARESIP_TONE) > 0.5
