"""callgate's side of the Twilio tests: the endpoint served by uvicorn, a real CallRunner per call,
the scripted model over the real OpenAI protocol, and the legs' speech.

Two kinds of speech: `tone` (default, fast: the voice is a tone as long as the words, the ear an
energy detector where a burst of tone then 200 ms of quiet is one utterance) and `espeak` (espeak-ng
voices on both sides, the speech package's listener with Silero VAD). Either way the words of an
utterance are the stand-in's record of what that party said: recognition is not under test here.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from starlette.applications import Starlette
from twilio_standin import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, TwilioStandIn

from callgate.channels.twilio import TwilioCall, TwilioConfig, TwilioEndpoint, twilio_routes
from callgate.llm.client import ChatModel, OpenAIChatModel
from callgate.records.store import Store, open_store
from callgate.runtime.call_runner import CallRunner, CallSetup
from callgate.runtime.post_call import PostCallServices, finish_live_call
from callgate.scenario.model_server import ScriptedModelServer
from callgate.speech.backends import SpeechBackends
from callgate.speech.base import EventSink, Synthesizer, frame_bytes
from callgate.speech.listener import SpeechListener
from callgate.speech.settings import SpeechSettings
from callgate.speech.tts_espeak import EspeakSynthesizer
from callgate.speech.vad import SileroVad
from callgate.swaig.context import CallContext
from callgate.swml.loader import parse_document
from callgate.swml.models import AI
from callgate.telephony.base import CallerSpeech, SpeechStarted
from callgate.telephony.clock import SystemClock
from callgate.timeline import CallOutcome

SECONDS_PER_WORD = 0.06


class ToneSynthesizer:
    """Text → a tone lasting SECONDS_PER_WORD a word; remembers what it said."""

    def __init__(self) -> None:
        self.said: list[str] = []

    async def synthesize(self, text: str, *, sample_rate: int, language: str | None = None) -> bytes:
        self.said.append(text)
        samples = max(1, int(len(text.split()) * SECONDS_PER_WORD * sample_rate))
        t = np.arange(samples) / sample_rate
        return bytes((6000 * np.sin(2 * math.pi * 300 * t)).astype("<i2").tobytes())


def frames_for(text: str) -> int:
    """How many 20 ms frames ToneSynthesizer makes of `text`."""
    return math.ceil(max(1, int(len(text.split()) * SECONDS_PER_WORD * 8000)) / 160)


class RecordingSynthesizer:
    """The real voice (espeak-ng through the speech package), remembering what it said and how long."""

    def __init__(self, inner: Synthesizer) -> None:
        self.inner = inner
        self.said: list[str] = []
        self.frames: dict[str, int] = {}

    async def synthesize(self, text: str, *, sample_rate: int, language: str | None = None) -> bytes:
        pcm = await self.inner.synthesize(text, sample_rate=sample_rate, language=language)
        self.said.append(text)
        self.frames[text] = math.ceil(len(pcm) / frame_bytes(sample_rate))
        return pcm


class OracleRecognizer:
    """Recognition is the one part played by the test: the words are the stand-in's record of what
    that party said (Whisper is too slow for the suite); finding the speech is the real VAD's job."""

    def __init__(self, transcript: Callable[[], str]) -> None:
        self._transcript = transcript
        self.audio_seconds: list[float] = []

    async def transcribe(
        self, audio: bytes, *, sample_rate: int, language: str | None = None, prompt: str | None = None
    ) -> str:
        self.audio_seconds.append(len(audio) / 2 / sample_rate)
        return self._transcript()


class ToneListener:
    """Energy VAD: SpeechStarted at the first loud frame, CallerSpeech after 200 ms of quiet."""

    def __init__(self, sink: EventSink, transcript: Callable[[], str]) -> None:
        self._sink = sink
        self._transcript = transcript
        self._speaking = False
        self._quiet = 0
        self._paused = False
        self.frames = 0

    def feed(self, frame: bytes) -> None:
        if self._paused:
            return
        self.frames += 1
        loud = float(np.sqrt(np.mean(np.frombuffer(frame, dtype="<i2").astype(np.float64) ** 2))) > 500
        if loud:
            self._quiet = 0
            if not self._speaking:
                self._speaking = True
                self._sink(SpeechStarted())
        elif self._speaking:
            self._quiet += 1
            if self._quiet >= 10:
                self._speaking = False
                self._sink(CallerSpeech(self._transcript(), final=True))

    def pause(self) -> None:
        self._paused = True
        self._speaking = False

    def resume(self) -> None:
        self._paused = False

    async def aclose(self) -> None:
        self._paused = True


@dataclass
class Agent:
    """The callgate under test, wired as `callgate serve --http` wires it."""

    standin: TwilioStandIn
    endpoint: TwilioEndpoint
    model: ScriptedModelServer
    store: Store
    synth: ToneSynthesizer | RecordingSynthesizer = field(default_factory=ToneSynthesizer)
    runners: list[CallRunner] = field(default_factory=list)
    outcomes: list[CallOutcome] = field(default_factory=list)
    records: list[Any] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_done(self, timeout: float = 30) -> CallOutcome:
        await asyncio.wait_for(self.done.wait(), timeout)
        return self.outcomes[-1]


@contextlib.asynccontextmanager
async def serve_agent(
    document: dict[str, Any] | Callable[[TwilioStandIn], dict[str, Any]],
    scripts: dict[str, list[dict[str, Any]]],
    tmp_path: Path,
    *,
    speech: str = "tone",
    **config: Any,
) -> AsyncIterator[Agent]:
    """`speech="espeak"`: espeak-ng voices on both sides and the real listener (Silero VAD).
    `document` may be made from the running stand-in (a URL of a file it serves)."""
    clock = SystemClock()
    standin = TwilioStandIn()
    await standin.start()
    if callable(document):
        document = document(standin)
    settings = TwilioConfig(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        public_url=PUBLIC_URL,
        api_base_url=standin.base_url,
        hangup_delay_ms=config.pop("hangup_delay_ms", 50),
        **config,
    )
    doc = parse_document(document, source="<test agent>").document
    agent: Agent | None = None
    http = httpx.AsyncClient()
    models: list[ChatModel] = []

    def prepare(call: TwilioCall) -> None:
        assert agent is not None

        def transcript() -> str:
            fake = standin.calls.get(call.call_id)
            return fake.spoken.popleft() if fake is not None and fake.spoken else "(unintelligible)"

        if speech == "espeak":
            listener = SpeechListener(
                OracleRecognizer(transcript),
                SileroVad(8000),
                sink=call.deliver,
                clock=clock,
                sample_rate=8000,
            )
            call.use_speech(agent.synth, listener)
        else:
            call.use_speech(agent.synth, ToneListener(call.deliver, transcript))

    async def on_call(call: TwilioCall) -> None:
        assert agent is not None

        def model_for(role: str, ai: AI) -> ChatModel:
            model = OpenAIChatModel(agent.model.base_url(role), "test-key", clock=clock)
            models.append(model)
            return model

        context = CallContext(
            caller_id_num=call.from_number, caller_id_name=call.caller_name, to_number=call.to_number
        )
        setup = CallSetup(
            document=doc,
            call=call,
            clock=clock,
            http=http,
            model_for=model_for,
            context=context,
            switch=agent.endpoint.switch,
        )
        runner = CallRunner(setup)
        agent.runners.append(runner)
        try:
            agent.outcomes.append(await runner.run())
            record, _status = await finish_live_call(
                runner, PostCallServices(agent.store, http, clock, model_for)
            )
            agent.records.append(record)
        finally:
            agent.done.set()

    endpoint = TwilioEndpoint(settings, clock=clock, on_call=on_call, prepare_leg=prepare)
    app = Starlette(routes=twilio_routes(endpoint))
    server_config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server_config.load()
    server = uvicorn.Server(server_config)
    server.lifespan = server_config.lifespan_class(server_config)
    await asyncio.wait_for(server.startup(), 10)
    port = server.servers[0].sockets[0].getsockname()[1]
    standin.local_base = f"http://127.0.0.1:{port}"
    store = open_store(str(tmp_path / "calls.db"))
    try:
        async with ScriptedModelServer(scripts) as model:
            agent = Agent(standin=standin, endpoint=endpoint, model=model, store=store)
            if speech == "espeak":
                settings_ = SpeechSettings.from_params(doc.find_ai().params if doc.find_ai() else None)
                agent.synth = RecordingSynthesizer(SpeechBackends({}).synthesizer(settings_))
                caller_voice = EspeakSynthesizer("en-US")

                async def voice(text: str) -> bytes:
                    return await caller_voice.synthesize(text, sample_rate=8000)

                standin.voice = voice
            try:
                yield agent
            finally:
                await endpoint.stop()
                await standin.stop()
                for model_client in models:
                    await model_client.aclose()
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.shutdown(), 10)
        await http.aclose()
        store.close()
