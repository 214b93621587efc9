"""A real CallRunner over a SipCall: an example scenario's agent and scripted model, a sipp caller.

The caller's words travel as audio: each `user` turn is a burst of tone from a Python RTP party,
which an energy detector on our side turns into SpeechStarted + CallerSpeech with the turn's text
(no speech recognition needed to prove the call logic runs on the wire). The agent's voice is a
tone synthesizer. The scenario's own `expect` block is checked on the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import yaml

from callgate.channels.sip import SipCall, SipConfig, SipEndpoint
from callgate.llm.client import ChatModel, OpenAIChatModel
from callgate.runtime.call_runner import CallRunner, CallSetup
from callgate.scenario.format import Scenario, UserTurn, WaitTurn, load_scenario
from callgate.scenario.model_server import ScriptedModelServer
from callgate.speech.base import EventSink
from callgate.swaig.context import CallContext
from callgate.swml.loader import parse_document
from callgate.swml.models import AI
from callgate.telephony.base import CallerSpeech, SpeechStarted
from callgate.telephony.clock import SystemClock
from callgate.timeline import CallOutcome

from .peers import RtpParty, ToneSynthesizer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"


class ToneEar:
    """Energy VAD: SpeechStarted at the first loud frame, CallerSpeech after 200 ms of quiet."""

    def __init__(self, sink: EventSink, words: deque[str]) -> None:
        self.sink = sink
        self.words = words
        self.speaking = False
        self.quiet = 0
        self.paused = False

    def feed(self, frame: bytes) -> None:
        if self.paused:
            return
        level = float(np.sqrt(np.mean(np.frombuffer(frame, dtype="<i2").astype(np.float64) ** 2)))
        if level > 500:
            self.quiet = 0
            if not self.speaking:
                self.speaking = True
                self.sink(SpeechStarted())
        elif self.speaking:
            self.quiet += 1
            if self.quiet >= 10:
                self.speaking = False
                self.sink(
                    CallerSpeech(self.words.popleft() if self.words else "(unintelligible)", final=True)
                )

    def pause(self) -> None:
        self.paused = True
        self.speaking = False

    def resume(self) -> None:
        self.paused = False

    async def aclose(self) -> None:
        self.paused = True


@dataclass
class SipAgent:
    scenario: Scenario
    endpoint: SipEndpoint
    model: ScriptedModelServer
    synth: ToneSynthesizer = field(default_factory=lambda: ToneSynthesizer(1000))
    words: deque[str] = field(default_factory=deque)  # what the caller says next, in order
    dialled: list[SipCall] = field(default_factory=list)
    dialled_words: dict[str, deque[str]] = field(default_factory=dict)
    runners: list[CallRunner] = field(default_factory=list)
    outcomes: list[CallOutcome] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def perform_turns(self, party: RtpParty) -> None:
        """Speak the scenario's caller turns into the call, each after the agent went quiet."""
        while not self.runners:
            await asyncio.sleep(0.02)
        runner = self.runners[0]
        for turn in self.scenario.turns:
            if isinstance(turn, UserTurn):
                await asyncio.wait_for(runner.agent_idle(), 20)
                await asyncio.sleep(0.3)  # the last agent frames are still on the wire
                self.words.append(turn.user)
                party.frequency = 600
                await party.send_tone(0.4)
                party.frequency = None
            elif isinstance(turn, WaitTurn):
                await asyncio.sleep(float(turn.wait))
            # `hangup` turns are the sipp script's BYE.

    def prepare(self, call: SipCall) -> None:
        """Every leg gets the tone voice and an ear; a dialled leg's ear hears that party's turns."""
        words = self.words
        if call.leg != "caller":
            words = self.dialled_words.setdefault(call.call_id, deque())
            self.dialled.append(call)
        call.use_speech(self.synth, ToneEar(call.deliver, words))

    async def perform_leg_turns(self, name: str, party: RtpParty) -> None:
        """A dialled party's turns (scenario `legs.<name>.turns`), each after its consult agent."""
        while not self.dialled or not self.runners:
            await asyncio.sleep(0.02)
        leg = self.dialled[0]
        for turn in self.scenario.leg_turns(name):
            if isinstance(turn, UserTurn):
                await asyncio.wait_for(self.runners[0].consults.wait_idle(leg.call_id), 20)
                await asyncio.sleep(0.3)
                self.dialled_words[leg.call_id].append(turn.user)
                party.frequency = 900
                await party.send_tone(0.4)
                party.frequency = None


@contextlib.asynccontextmanager
async def sip_agent(
    scenario_name: str, *, proxy: str | None = None, replace: dict[str, str] | None = None
) -> AsyncIterator[SipAgent]:
    """The example scenario's agent answering SIP calls on a free loopback port (`proxy`: where
    numbers are dialled; `replace`: text substitutions in the agent document, e.g. a hold-music
    URL on the internet swapped for a local file — tests touch only loopback)."""
    scenario = load_scenario(EXAMPLES / scenario_name)
    assert isinstance(scenario.agent, str)
    text = (EXAMPLES / scenario.agent).read_text()
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    document = parse_document(yaml.safe_load(text), source=scenario.agent).document
    clock = SystemClock()
    http = httpx.AsyncClient()
    models: list[ChatModel] = []
    holder: list[SipAgent] = []

    async def on_call(call: SipCall) -> None:
        agent = holder[0]

        def model_for(role: str, ai: AI) -> ChatModel:
            model = OpenAIChatModel(agent.model.base_url(role), "test-key", clock=clock)
            models.append(model)
            return model

        context = CallContext(
            caller_id_num=call.from_number, caller_id_name=call.caller_name, to_number=call.to_number
        )
        setup = CallSetup(
            document=document,
            call=call,
            clock=clock,
            http=http,
            model_for=model_for,
            context=context,
            switch=agent.endpoint.switch,
        )
        runner = CallRunner(setup, started_at=call.started_at)  # one time origin for utterances
        agent.runners.append(runner)
        try:
            outcome = await runner.run()
            outcome.utterances.extend(call.utterances)  # the sim driver's job, done by the channel here
            agent.outcomes.append(outcome)
        finally:
            agent.done.set()

    endpoint = SipEndpoint(
        SipConfig(host="127.0.0.1", port=0, hangup_delay_ms=200, proxy=proxy),
        clock=clock,
        on_call=on_call,
        prepare_leg=lambda leg: holder[0].prepare(leg),
    )
    await endpoint.start()
    try:
        async with ScriptedModelServer(scenario.llm) as model:
            holder.append(SipAgent(scenario=scenario, endpoint=endpoint, model=model))
            yield holder[0]
    finally:
        await endpoint.stop()
        for model_client in models:
            await model_client.aclose()
        await http.aclose()
