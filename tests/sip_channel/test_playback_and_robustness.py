"""play() from WAV files and URLs, barge-in, outbound auth, and what a broken handler or port does."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from callgate.channels.sip import SipCall, SipConfig, SipEndpoint
from callgate.speech.audio import to_wav
from callgate.speech.base import SpeechError
from callgate.telephony.base import EndedReason, MediaTimeout, SpeechInterrupted

from .conftest import EndpointHarness
from .peers import ToneSynthesizer, rtp_party, sipp, tone, tone_share


@contextlib.contextmanager
def file_server(root: Path) -> Iterator[str]:
    """A real HTTP server on loopback serving `root`."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def tone_wav(path: Path, frequency: float, rate: int, seconds: float) -> Path:
    import math

    import numpy as np

    n = np.arange(int(rate * seconds))
    pcm = (6000 * np.sin(2 * math.pi * frequency * n / rate)).astype("<i2").tobytes()
    path.write_bytes(to_wav(bytes(pcm), rate))
    return path


async def _voiced_frames(party_audio: bytes, frequency: float) -> int:
    frames = [party_audio[i : i + 320] for i in range(0, len(party_audio), 320)]
    return sum(1 for frame in frames if tone_share(frame, frequency) > 0.5)


async def test_play_wav_at_every_common_rate_and_from_a_url(sip: EndpointHarness, workdir: Path) -> None:
    files = {
        rate: tone_wav(workdir / f"tone{rate}.wav", frequency, rate, 0.4)
        for rate, frequency in [(8000, 500), (16000, 900), (22050, 1300), (44100, 1700)]
    }
    how: list[str | None] = []

    async def handler(call: SipCall) -> None:
        await call.answer()
        with file_server(workdir) as base:
            for rate, path in files.items():
                source = f"{base}/{path.name}" if rate == 44100 else str(path)
                playback = await call.play(source)
                await playback.wait()
                how.append(playback.how)
            missing = await call.play(f"{base}/no-such.wav")
            await missing.wait()
            how.append(missing.how)
        await call.hangup(str(EndedReason.ASSISTANT_ENDED_CALL))

    sip.handler = handler
    async with rtp_party() as party:
        result = await sipp(
            "agent_hangs_up.xml", sip.port, keys={"rtp_port": str(party.port)}, workdir=workdir
        )
    assert result.ok, result.errors
    assert how[:4] == ["finished"] * 4
    assert how[4] is not None and how[4].startswith("error")  # a 404 is logged, the call goes on
    audio = party.audio()
    for frequency in (500, 900, 1300, 1700):
        assert await _voiced_frames(audio, frequency) >= 15, frequency  # 0.4 s = 20 frames


async def test_looping_music_plays_until_stopped_even_on_hold(sip: EndpointHarness, workdir: Path) -> None:
    music = tone_wav(workdir / "music.wav", 800, 16000, 0.2)
    state: list[str | None] = []

    async def handler(call: SipCall) -> None:
        await call.answer()
        await call.hold()
        playback = await call.play(str(music), loop=True)
        await asyncio.sleep(1.0)
        await playback.stop()
        await playback.wait()
        state.append(playback.how)
        await call.unhold()
        await call.hangup(str(EndedReason.ASSISTANT_ENDED_CALL))

    sip.handler = handler
    async with rtp_party() as party:
        result = await sipp("hold_unhold.xml", sip.port, keys={"rtp_port": str(party.port)}, workdir=workdir)
    assert result.ok, result.errors
    assert state == ["stopped"]
    assert await _voiced_frames(party.audio(), 800) >= 35  # 1 s of a 0.2 s file: it looped


async def test_barge_in_cuts_say_and_reports_the_words_heard(sip: EndpointHarness, workdir: Path) -> None:
    heard: list[str] = []

    async def handler(call: SipCall) -> None:
        call.use_speech(ToneSynthesizer(), None)
        await call.answer()
        text = "one two three four five six seven eight nine ten"  # 2 s
        speaking = asyncio.ensure_future(call.say(text))
        await asyncio.sleep(0.7)
        call.interrupt_speech()
        with pytest.raises(SpeechInterrupted) as cut:
            await speaking
        heard.append(cut.value.heard)
        await call.hangup(str(EndedReason.ASSISTANT_ENDED_CALL))

    sip.handler = handler
    async with rtp_party() as party:
        result = await sipp(
            "agent_hangs_up.xml", sip.port, keys={"rtp_port": str(party.port)}, workdir=workdir
        )
    assert result.ok, result.errors
    words = heard[0].split()
    assert 1 <= len(words) <= 5 and "one two".startswith(" ".join(words[:2])[:3])
    voiced = await _voiced_frames(party.audio(), 1000)
    assert voiced < 60  # far less than the 100 frames of the whole text


async def test_say_without_a_synthesizer_is_a_speech_error(sip: EndpointHarness, workdir: Path) -> None:
    errors: list[Exception] = []

    async def handler(call: SipCall) -> None:
        await call.answer()
        try:
            await call.say("hello")
        except SpeechError as error:
            errors.append(error)
        await call.hangup(str(EndedReason.ASSISTANT_ENDED_CALL))

    sip.handler = handler
    result = await sipp("agent_hangs_up.xml", sip.port, keys={"rtp_port": "40012"}, workdir=workdir)
    assert result.ok, result.errors
    assert [str(e) for e in errors] == ["no synthesizer"]


async def test_a_failing_handler_ends_only_its_own_call(sip: EndpointHarness, workdir: Path) -> None:
    async def handler(call: SipCall) -> None:
        await call.answer()
        raise RuntimeError("the agent blew up")

    sip.handler = handler
    result = await sipp("agent_hangs_up.xml", sip.port, keys={"rtp_port": "40014"}, workdir=workdir)
    assert result.ok, result.errors  # the caller got a BYE, not a dead line
    assert sip.calls[0].ended_reason == EndedReason.PIPELINE_ERROR
    assert (await sipp("options.xml", sip.port, workdir=workdir)).ok  # still serving


async def test_a_taken_port_is_a_clear_error(sip: EndpointHarness) -> None:
    second = SipEndpoint(SipConfig(host="127.0.0.1", port=sip.port))
    with pytest.raises(OSError, match=f"cannot listen for SIP on udp 127.0.0.1:{sip.port}"):
        await second.start()


@pytest.mark.sip_config(media_timeout=0.5)
async def test_the_inactivity_clock_pauses_while_held(sip: EndpointHarness, workdir: Path) -> None:
    events: list[object] = []

    async def handler(call: SipCall) -> None:
        await call.answer()
        await call.hold()
        await asyncio.sleep(1.5)  # no media at all while held: not a vanished peer
        await call.unhold()
        with contextlib.suppress(Exception):
            while True:
                event = await asyncio.wait_for(anext(aiter(call.events())), 0.05)
                events.append(event)
        await call.hangup(str(EndedReason.ASSISTANT_ENDED_CALL))

    sip.handler = handler
    result = await sipp("hold_unhold.xml", sip.port, keys={"rtp_port": "40016"}, workdir=workdir)
    assert result.ok, result.errors
    assert MediaTimeout() not in events
    assert sip.calls[0].ended_reason == EndedReason.ASSISTANT_ENDED_CALL


def test_tone_helper_is_sane() -> None:
    assert tone_share(tone(1000, 0.2), 1000) > 0.9
    assert tone_share(tone(1000, 0.2), 600) < 0.01
