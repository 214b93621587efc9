"""The leg's ear makes partial transcripts only while the agent's speech plays (barge-in counts the
caller's words as they come: DESIGN §8), and never when the owner did not ask for them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from callgate.channels.sip import SipCall

from .conftest import EndpointHarness
from .peers import RecordingListener, ToneSynthesizer, rtp_party, sipp, tone_share

pytestmark = pytest.mark.timeout(60)


class SwitchedListener(RecordingListener):
    """A test ear with the partials switch (speech.base.PartialsSwitch): notes each frame's state."""

    def __init__(self) -> None:
        super().__init__()
        self.partials = False
        self.switches: list[bool] = []
        self.frames_with_partials = 0

    def set_partials(self, enabled: bool) -> None:
        self.partials = enabled
        self.switches.append(enabled)

    def feed(self, frame: bytes) -> None:
        super().feed(frame)
        self.frames_with_partials += self.partials


@pytest.mark.parametrize("wanted", [True, False])
async def test_partials_are_on_only_while_the_agent_speaks(
    sip: EndpointHarness, workdir: Path, wanted: bool
) -> None:
    listener = SwitchedListener()
    during: list[bool] = []

    async def handler(call: SipCall) -> None:
        call.use_speech(ToneSynthesizer(1000), listener, partials_while_speaking=wanted)
        await call.answer()
        await asyncio.sleep(0.4)  # the caller talks; the agent is silent
        speaking = asyncio.ensure_future(call.say("hello there caller"))  # 600 ms of 1 kHz
        await asyncio.sleep(0.2)
        during.append(listener.partials)
        await speaking
        async for _ in call.events():
            pass

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
    assert tone_share(party.audio(), 1000) > 0.2  # the agent's speech was played
    fed = len(listener.frames)
    if wanted:
        assert during == [True] and listener.switches == [True, False]
        # Partials for the caller's frames heard while the agent spoke, not before or after.
        assert 0 < listener.frames_with_partials < fed
    else:
        assert during == [False] and listener.switches == [] and listener.frames_with_partials == 0
