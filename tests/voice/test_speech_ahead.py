"""Sentences synthesised while earlier ones play (issue 9 item 3, speech.ahead): the agent's speaker
announces every queued sentence to the leg, which synthesises it at once, in order; say() takes the
audio already made. Checked on a real SIP leg by what had been played when each synthesis began."""

from __future__ import annotations

import asyncio

import pytest

from callgate.agent.speaker import Speaker
from callgate.channels.sip import SipCall, SipConfig, SipEndpoint
from callgate.speech.ahead import MAX_AHEAD, SpeechAhead
from callgate.speech.base import SpeechError
from callgate.telephony.base import Destination
from sip_channel.peers import ToneSynthesizer

pytestmark = pytest.mark.timeout(60)

SENTENCES = ["one two three four five.", "six seven eight nine ten.", "eleven twelve thirteen."]


class NotingSynthesizer(ToneSynthesizer):
    """A tone voice that notes, for each sentence, how many sentences the leg had finished playing."""

    def __init__(self) -> None:
        super().__init__()
        self.leg: SipCall | None = None
        self.notes: list[tuple[str, int]] = []

    async def synthesize(self, text: str, *, sample_rate: int, language: str | None = None) -> bytes:
        assert self.leg is not None
        self.notes.append((text, len(self.leg.utterances)))
        await asyncio.sleep(0.05)  # a synthesis takes a moment
        return await super().synthesize(text, sample_rate=sample_rate, language=language)


async def test_a_replys_sentences_are_synthesised_while_the_first_plays() -> None:
    voice = NotingSynthesizer()
    played: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()

    async def agent(call: SipCall) -> None:
        voice.leg = call
        call.use_speech(voice, None)
        await call.answer()
        speaker = Speaker(call, [])
        for sentence in SENTENCES:
            speaker.say_soon(sentence)
        await speaker.drain()
        played.set_result([utterance.text for utterance in call.utterances])
        await call.hangup("assistant-ended-call")

    async def refuse(call: SipCall) -> None:
        await call.hangup("no incoming calls here")

    server = SipEndpoint(SipConfig(host="127.0.0.1", port=0, hangup_delay_ms=0), on_call=agent)
    phone = SipEndpoint(SipConfig(host="127.0.0.1", port=0), on_call=refuse)
    await server.start()
    await phone.start()
    try:
        leg = await phone.switch.dial(Destination.parse(f"sip:agent@127.0.0.1:{server.port}"), "+1555", 10)
        assert await asyncio.wait_for(played, 30) == SENTENCES  # said in order, each in full
        await asyncio.wait_for(leg.wait_ended(), 10)
    finally:
        await phone.stop()
        await server.stop()
    # Every sentence was synthesised before the first had finished playing, each exactly once.
    assert voice.notes == [(sentence, 0) for sentence in SENTENCES]


async def test_speech_ahead_reraises_failures_drops_cleared_work_and_stays_bounded() -> None:
    ahead = SpeechAhead()
    started: list[str] = []

    async def synthesize(text: str) -> bytes:
        started.append(text)
        if text == "bad":
            raise SpeechError("espeak-ng failed")
        await asyncio.sleep(0.01)
        return text.encode()

    ahead.start("bad", synthesize)
    with pytest.raises(SpeechError, match="espeak-ng failed"):
        await ahead.take("bad", synthesize)
    assert await ahead.take("never announced", synthesize) == b"never announced"
    for index in range(MAX_AHEAD + 2):
        ahead.start(f"sentence {index}", synthesize)
    assert await ahead.take("sentence 0", synthesize) == b"sentence 0"  # the oldest: evicted, made anew
    assert started.count("sentence 0") == 1  # (evicted before it ran)
    ahead.clear()
    await asyncio.sleep(0.2)
    assert "sentence 5" not in started  # cleared while waiting its turn: never synthesised
