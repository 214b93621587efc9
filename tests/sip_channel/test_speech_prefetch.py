"""Sentences are synthesised while earlier ones play (issue 9 item 3, DESIGN §8, speech.ahead), with
the voice an OpenAI-compatible `/v1/audio/speech` server on loopback: the agent's Speaker announces
each queued sentence to the SIP leg (`SpeaksAhead.prefetch_speech`, pronounce rules applied), the
server is asked for sentence 2 before sentence 1 has finished playing, and the caller's received RTP
has no silent gap of a synthesis between them. A barge-in drops what was being made ahead, and a
sentence whose audio was still being made when the caller barged in is not played at all. Order
and frame counts only: no wall-clock thresholds.

"Without prefetch" is the same leg saying the sentences one after another, unannounced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from callgate.agent.speaker import Speaker
from callgate.channels.sip import SipCall
from callgate.speech.backends import SpeechBackends
from callgate.speech.base import Synthesizer
from callgate.speech.codecs import decode
from callgate.speech.settings import SpeechSettings
from callgate.swml.models import Pronounce
from callgate.telephony.base import EndedReason
from speech.conftest import Reply, Request, SpeechServer, tone, wav_reply

from .conftest import EndpointHarness
from .peers import RtpParty, rtp_party, sipp, tone_share

pytestmark = pytest.mark.timeout(90)

# Each sentence is one tone, so the caller's RTP tells which sentence a frame belongs to.
FIRST = "Alpha is the first sentence."
SECOND = "Bravo comes second."
THIRD = "Charlie comes third."
SECOND_SAID = "Brah-voh comes second."  # the document's pronounce rule applied: what the TTS gets
RULES = [Pronounce(replace="bravo", with_="Brah-voh")]
TONES = {FIRST: (600.0, 1.0), SECOND: (1000.0, 0.6), SECOND_SAID: (1000.0, 0.6), THIRD: (1400.0, 0.6)}
SLOW = 0.3  # seconds the loopback TTS takes per sentence: fifteen 20 ms frames


def tone_voice(slow: dict[str, float], answered: list[str] | None = None) -> Callable[[Request], Reply]:
    """The loopback TTS: each sentence's tone as a WAV, after `slow[text]` (default SLOW) seconds;
    `answered` gets each text as its audio is sent."""

    def handler(request: Request) -> Reply:
        text = request.json["input"]
        time.sleep(slow.get(text, SLOW))
        frequency, seconds = TONES[text]
        if answered is not None:
            answered.append(text)
        return wav_reply(tone(frequency, seconds, 8000), 8000)

    return handler


def voice(server: SpeechServer) -> Synthesizer:
    """The call's voice as callgate builds it for an endpoint (`params.tts_base_url`)."""
    return SpeechBackends().synthesizer(SpeechSettings(tts_base_url=server.base_url))


def voiced(frame: bytes) -> bool:
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float64)
    return bool(samples.size) and float(np.sqrt(np.mean(samples**2))) > 300.0


def frames_in_order(party: RtpParty) -> list[bytes]:
    """The caller's received audio frames (PCMU decoded), as they arrived (loopback keeps order)."""
    return [decode(r.packet.payload, "PCMU") for r in party.received if r.packet.payload_type == 0]


def silent_gaps(frames: list[bytes]) -> list[int]:
    """Runs of silent frames between voiced ones (leading and trailing silence not counted)."""
    flags = [voiced(f) for f in frames]
    if True not in flags:
        return []
    first, last = flags.index(True), len(flags) - 1 - flags[::-1].index(True)
    gaps, run = [], 0
    for flag in flags[first : last + 1]:
        if flag:
            if run:
                gaps.append(run)
            run = 0
        else:
            run += 1
    return gaps


async def until(condition: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    for _ in range(int(limit / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def hears(party: RtpParty, frequency: float) -> Callable[[], bool]:
    return lambda: any(voiced(f) and tone_share(f, frequency) > 0.5 for f in frames_in_order(party))


async def run_call(
    sip: EndpointHarness, workdir: Path, speak: Callable[[SipCall, RtpParty], object]
) -> RtpParty:
    """One real call from sipp; `speak(call, party)` is the agent's side, then the agent hangs up."""
    async with rtp_party() as party:

        async def handler(call: SipCall) -> None:
            await call.answer()
            await speak(call, party)  # type: ignore[misc]
            await call.hangup(str(EndedReason.ASSISTANT_ENDED_CALL))

        sip.handler = handler
        result = await sipp(
            "agent_hangs_up.xml", sip.port, keys={"rtp_port": str(party.port)}, workdir=workdir
        )
        assert result.ok, result.errors
    return party


@pytest.mark.parametrize("prefetch", [True, False])
async def test_the_next_sentence_is_made_while_one_plays(
    sip: EndpointHarness, workdir: Path, speech_server: SpeechServer, prefetch: bool
) -> None:
    speech_server.handler = tone_voice({})
    synth = voice(speech_server)
    requests_when_spoken: dict[str, int] = {}

    def spoken(text: str) -> None:
        requests_when_spoken[text] = len(speech_server.requests)

    async def speak(call: SipCall, party: RtpParty) -> None:
        call.use_speech(synth, None)
        if not prefetch:  # one sentence after the other, each synthesised when its say() begins
            await call.say(FIRST)
            spoken(FIRST)
            await call.say(SECOND_SAID)
            return
        speaker = Speaker(call, RULES, on_spoken=spoken)
        speaker.say_soon(FIRST)
        await until(hears(party, TONES[FIRST][0]), "the first sentence playing")
        speaker.say_soon(SECOND)  # as the model streams it, while the first one plays
        await speaker.drain()
        assert speaker.spoken == [FIRST, SECOND]

    party = await run_call(sip, workdir, speak)
    # Each sentence was synthesised once, the second as it is said (the rule applied before it was
    # announced: the audio made ahead was the audio said).
    assert [r.json["input"] for r in speech_server.requests] == [FIRST, SECOND_SAID]
    frames = frames_in_order(party)
    gaps = silent_gaps(frames)
    assert len(gaps) == 1, gaps  # one boundary: first tone, silence, second tone
    if prefetch:
        # The server was asked for the second sentence before the first had finished playing…
        assert requests_when_spoken[FIRST] == 2
        # … so the caller hears it right after: the pacer's one tick between utterances, no synthesis.
        assert gaps[0] <= 2, gaps
    else:
        assert requests_when_spoken[FIRST] == 1  # asked for only when its say() began
        assert gaps[0] >= 10, (
            gaps
        )  # the whole synthesis (≥ 15 frames at the server's pace) is heard as silence
    assert (
        sum(voiced(f) and tone_share(f, TONES[SECOND][0]) > 0.5 for f in frames) >= 25
    )  # all 30 frames nearly


async def test_barge_in_drops_the_sentences_made_ahead(
    sip: EndpointHarness, workdir: Path, speech_server: SpeechServer
) -> None:
    answered: list[str] = []
    speech_server.handler = tone_voice({FIRST: 0.0, SECOND: 3.0, THIRD: 0.0}, answered)
    synth = voice(speech_server)
    seen: dict[str, object] = {}

    async def speak(call: SipCall, party: RtpParty) -> None:
        call.use_speech(synth, None)
        speaker = Speaker(call, [])
        for text in (FIRST, SECOND, THIRD):
            speaker.say_soon(text)
        await until(hears(party, TONES[FIRST][0]), "the first sentence playing")
        # The second is being made ahead (one at a time: the third waits its turn).
        seen["asked"] = [r.json["input"] for r in speech_server.requests]
        assert speaker.barge_in()
        await speaker.drain()
        seen["heard"], seen["spoken"] = list(speaker.heard), list(speaker.spoken)
        # Dropped: not said even once the server has answered, and the third is never asked for.
        await until(lambda: SECOND in answered, "the server answering the dropped request too")

    party = await run_call(sip, workdir, speak)
    assert seen["asked"] == [FIRST, SECOND]
    assert [r.json["input"] for r in speech_server.requests] == [FIRST, SECOND]
    assert seen["spoken"] == [] and seen["heard"] != [FIRST]
    frames = frames_in_order(party)
    assert any(tone_share(f, TONES[FIRST][0]) > 0.5 for f in frames if voiced(f))
    for later in (SECOND, THIRD):
        assert not any(tone_share(f, TONES[later][0]) > 0.5 for f in frames if voiced(f)), later


async def test_a_sentence_barged_in_while_being_made_is_not_played(
    sip: EndpointHarness, workdir: Path, speech_server: SpeechServer
) -> None:
    answered: list[str] = []
    speech_server.handler = tone_voice({FIRST: 1.0}, answered)
    synth = voice(speech_server)
    seen: dict[str, object] = {}

    async def speak(call: SipCall, party: RtpParty) -> None:
        call.use_speech(synth, None)
        speaker = Speaker(call, [])
        speaker.say_soon(FIRST)
        await until(lambda: len(speech_server.requests) == 1, "the first sentence being made")
        assert speaker.barge_in()  # the caller talks before any of it was played
        await speaker.drain()
        seen["heard"], seen["spoken"] = list(speaker.heard), list(speaker.spoken)

    party = await run_call(sip, workdir, speak)
    assert answered == [FIRST]
    assert seen == {"heard": [], "spoken": []}
    assert not any(voiced(f) for f in frames_in_order(party))  # its audio came, and was never sent
