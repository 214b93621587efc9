"""Spoken calls end to end (issue 9 item 7): `callgate serve` answers a caller who speaks through
offline TTS over real RTP, and everything is checked by ear — the caller's words reach the model
(Silero VAD + Whisper in the server), the agent's words reach the caller (the caller's received RTP,
transcribed with Whisper), barge-in cuts the agent and the history keeps only what was heard, a
goodbye is never cut, and the silence timers run on RTP silence. (DTMF over SIP reaching the agent:
tests/server/test_serve_sip.py.)

The caller is callgate's own SIP user agent in the test process, dialling the server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from callgate.channels.sip import SipCall, SipConfig, SipEndpoint
from callgate.scenario.model_server import ScriptedModelServer
from callgate.speech.backends import SpeechBackends
from callgate.speech.base import TELEPHONE_RATE
from callgate.speech.settings import SpeechSettings
from callgate.telephony.base import Destination
from server.peers import ModelThread
from server.serving import Served, serving

FRAME = 320  # bytes: 20 ms at 8 kHz


class Ear:
    """The caller's ear: every frame the caller's leg received, kept to be listened to afterwards."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def feed(self, frame: bytes) -> None:
        self.frames.append(frame)

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def audio(self) -> bytes:
        return b"".join(self.frames)

    def voiced_seconds(self) -> float:
        voiced = 0
        for frame in self.frames:
            samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
            if samples.size and float(np.sqrt(np.mean(samples**2))) > 300.0:
                voiced += 1
        return voiced * 0.02

    async def until_quiet(self, quiet: float = 1.0, limit: float = 30.0) -> None:
        """Until the far end has spoken and then been quiet for `quiet` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline:
            await asyncio.sleep(0.1)
            tail = self.frames[-int(quiet / 0.02) :]
            if self.voiced_seconds() > 0.3 and len(tail) >= int(quiet / 0.02) and not _voiced(tail):
                return
        raise AssertionError("the agent never finished speaking")


def _voiced(frames: list[bytes]) -> bool:
    pcm = np.frombuffer(b"".join(frames), dtype="<i2").astype(np.float32)
    return bool(pcm.size) and float(np.sqrt(np.mean(pcm**2))) > 300.0


async def heard(backends: SpeechBackends, audio: bytes) -> str:
    """What Whisper makes of audio the caller received."""
    recognizer = backends.recognizer(SpeechSettings())
    return (await recognizer.transcribe(audio, sample_rate=TELEPHONE_RATE, language="en")).lower()


def _agent(path: Path, llm_url: str, **params: Any) -> Path:
    document = {
        "version": "1.0.0",
        "sections": {
            "main": [
                {
                    "ai": {
                        "prompt": {"text": "You are Frank from Acme."},
                        "params": {"llm_base_url": llm_url, **params},
                    }
                }
            ]
        },
    }
    path.write_text(yaml.safe_dump(document))
    return path


@asynccontextmanager
async def caller(served: Served, backends: SpeechBackends) -> AsyncIterator[tuple[SipCall, Ear]]:
    """A caller who dials the server, speaks with espeak-ng and records what it hears."""

    async def refuse(call: SipCall) -> None:
        await call.hangup("no incoming calls here")

    endpoint = SipEndpoint(SipConfig(host="127.0.0.1", port=0), on_call=refuse)
    await endpoint.start()
    try:
        destination = Destination.parse(f"sip:+15559870000@127.0.0.1:{served.sip_port}")
        leg = await endpoint.switch.dial(destination, "+15551230000", timeout=15)
        ear = Ear()
        leg.use_speech(backends.synthesizer(SpeechSettings()), ear)
        yield leg, ear
    finally:
        await endpoint.stop()


async def until_ended(leg: SipCall, limit: float = 40.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not leg.ended and loop.time() < deadline:
        await asyncio.sleep(0.1)
    assert leg.ended, "the server never hung up"


def _messages(model: ScriptedModelServer, index: int) -> list[dict[str, Any]]:
    requests = model.requests_of("agent")
    assert len(requests) > index, f"only {len(requests)} model requests"
    return list(requests[index].messages)


def _said_by(messages: list[dict[str, Any]], role: str) -> list[str]:
    return [str(m.get("content") or "") for m in messages if m.get("role") == role]


async def test_each_side_hears_the_other_and_the_goodbye_is_heard_before_the_bye(
    tmp_path: Path, backends: SpeechBackends
) -> None:
    script = [
        {"text": "Hello, this is Frank from Acme. How can I help you today?"},
        {"text": 'Sure. <imsagent_hangup endword="Thank you for calling Acme, goodbye!"/>'},
    ]
    with ModelThread({"agent": script}) as model:
        agent = _agent(tmp_path / "agent.yaml", model.base_url("agent"))
        with serving(agent, http=False, sip=True, env={"CALLGATE_DB": str(tmp_path / "calls.db")}) as served:
            async with caller(served, backends) as (leg, ear):
                await ear.until_quiet()
                greeting = await heard(backends, ear.audio())
                await leg.say("Please transfer me to a human agent.")
                await until_ended(leg)
    # The caller heard the agent, through RTP, in full: the greeting, then the goodbye before the BYE.
    assert "frank" in greeting and "acme" in greeting, greeting
    everything = await heard(backends, ear.audio())
    assert re.search(r"good ?bye", everything), everything
    # The agent heard the caller: the model's second request holds the caller's words.
    user = " ".join(_said_by(_messages(model, 1), "user")).lower()
    assert "human agent" in user, user  # (whisper hears espeak-ng imperfectly: "transfer" is often lost)


async def test_barge_in_cuts_the_agent_and_the_history_keeps_what_was_heard(
    tmp_path: Path, backends: SpeechBackends
) -> None:
    long_answer = (
        "We are open from nine in the morning until six in the evening on weekdays, on Saturdays from "
        "ten until four, and we are closed on Sundays, on public holidays and during the first week of "
        "August, when the whole team goes to the seaside."
    )
    script = [
        {"text": "Hello, this is Frank."},
        {"text": long_answer},
        {"text": 'Yes, we deliver. <imsagent_hangup endword="Goodbye!"/>'},
    ]
    with ModelThread({"agent": script}) as model:
        agent = _agent(tmp_path / "agent.yaml", model.base_url("agent"))
        with serving(agent, http=False, sip=True, env={"CALLGATE_DB": str(tmp_path / "calls.db")}) as served:
            async with caller(served, backends) as (leg, ear):
                await ear.until_quiet()
                await leg.say("What are your opening hours?")
                before = len(ear.frames)
                # The answer starts; two seconds into it the caller talks over the agent.
                while ear.voiced_seconds() - _seconds_voiced(ear.frames[:before]) < 2.0:
                    await asyncio.sleep(0.05)
                await leg.say("Stop, stop. Can I order a cake?")
                await until_ended(leg)
    third = _messages(model, 2)
    answers = _said_by(third, "assistant")
    cut = next(a for a in answers if a.startswith("We are open"))
    assert "seaside" not in cut and len(cut) < len(long_answer), cut  # only the words played
    assert "cake" in " ".join(_said_by(third, "user")).lower()
    everything = await heard(backends, ear.audio())
    assert "seaside" not in everything, everything


def _seconds_voiced(frames: list[bytes]) -> float:
    ear = Ear()
    ear.frames = frames
    return ear.voiced_seconds()


async def test_a_goodbye_is_never_cut_by_the_caller(tmp_path: Path, backends: SpeechBackends) -> None:
    goodbye = (
        "Thank you so much for calling Acme today, it was a pleasure, have a wonderful evening, goodbye!"
    )
    script = [
        {"text": "Hello, this is Frank."},
        {"text": f'Sure. <imsagent_hangup endword="{goodbye}"/>'},
    ]
    with ModelThread({"agent": script}) as model:
        agent = _agent(tmp_path / "agent.yaml", model.base_url("agent"))
        with serving(agent, http=False, sip=True, env={"CALLGATE_DB": str(tmp_path / "calls.db")}) as served:
            async with caller(served, backends) as (leg, ear):
                await ear.until_quiet()
                await leg.say("I have to go now, bye.")
                before = len(ear.frames)
                while ear.voiced_seconds() - _seconds_voiced(ear.frames[:before]) < 1.5:
                    await asyncio.sleep(0.05)
                await leg.say("Wait, wait, one more thing please.")
                await until_ended(leg)
    everything = await heard(backends, ear.audio())
    assert "wonderful" in everything and re.search(r"good ?bye", everything), everything
    assert len(model.requests_of("agent")) == 2  # the caller's late words started no new turn


async def test_silence_timers_run_on_rtp_silence(tmp_path: Path, backends: SpeechBackends) -> None:
    script = [{"text": "Hello, this is Frank."}] + [{"text": "Are you still there?"}] * 6
    with ModelThread({"agent": script}) as model:
        agent = _agent(
            tmp_path / "agent.yaml", model.base_url("agent"), attention_timeout=3000, inactivity_timeout=7000
        )
        db = tmp_path / "calls.db"
        with serving(agent, http=False, sip=True, env={"CALLGATE_DB": str(db)}) as served:
            async with caller(served, backends) as (leg, ear):
                # The caller says nothing: its leg sends RTP silence all along.
                await until_ended(leg)
    requests = model.requests_of("agent")
    # After the greeting, only the attention prompt makes the agent speak: RTP silence is no turn.
    assert len(requests) >= 2
    assert all(request.messages[-1]["role"] == "system" for request in requests[1:])
    everything = await heard(backends, ear.audio())
    assert "still there" in everything and "disconnecting" in everything, everything
    served_calls = served.logs(msg="call recorded")
    assert served_calls and served_calls[-1].get("ended_reason") == "silence-timed-out", served_calls
