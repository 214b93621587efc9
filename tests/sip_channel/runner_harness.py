"""An example scenario's call over SIP: the engine the scenario runner uses (`ScenarioCall`: the
agent document, the scripted model, the scenario's HTTP stubs, post-call work) on a `SipCall`,
with sipp as the caller (and as the trunk for dialled legs).

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
from typing import Any

import httpx
import numpy as np
import yaml

from callgate.channels.sip import SipCall, SipConfig, SipEndpoint
from callgate.runtime.scenario_call import ScenarioCall
from callgate.scenario.driver import SETTLE_YIELDS
from callgate.scenario.format import (
    BargeTurn,
    DtmfTurn,
    HangupTurn,
    Scenario,
    UserTurn,
    WaitTurn,
    load_scenario,
)
from callgate.scenario.http_stubs import StubTransport
from callgate.scenario.model_server import ScriptedModelServer
from callgate.speech.audio import to_wav
from callgate.speech.base import EventSink
from callgate.telephony.base import CallerSpeech, SpeechStarted
from callgate.telephony.clock import SystemClock
from callgate.timeline import CallOutcome, Timeline

from .peers import RtpParty, ToneSynthesizer, hang_up_cue, tone, until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"
TURN_DEADLINE = 20.0  # seconds the agent may take to answer a turn on a loaded machine
POST_CALL_GRACE = 2.0


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


async def heard(words: deque[str]) -> None:
    """Until the ear has turned the voice burst into CallerSpeech, and the engine has taken it
    (so asking whether the agent is idle answers for this turn, not the one before)."""
    await until(lambda: not words, TURN_DEADLINE, "the ear to hear the words")
    for _ in range(SETTLE_YIELDS):
        await asyncio.sleep(0)


@dataclass
class SipAgent:
    scenario: Scenario
    endpoint: SipEndpoint
    model: ScriptedModelServer
    transport: StubTransport
    synth: ToneSynthesizer = field(default_factory=lambda: ToneSynthesizer(1000))
    words: deque[str] = field(default_factory=deque)  # what the caller says next, in order
    callers: list[SipCall] = field(default_factory=list)
    dialled: list[SipCall] = field(default_factory=list)
    dialled_words: dict[str, deque[str]] = field(default_factory=dict)
    calls: list[ScenarioCall] = field(default_factory=list)
    outcomes: list[CallOutcome] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def _engine(self) -> ScenarioCall:
        await until(lambda: bool(self.calls) and self.calls[0].runner is not None, TURN_DEADLINE)
        return self.calls[0]

    async def _agent_quiet(self, party: RtpParty) -> None:
        """The agent finished responding, and its last frames have reached the caller."""
        engine = await self._engine()
        await asyncio.wait_for(engine.agent_idle(), TURN_DEADLINE)
        await party.quiet()

    async def _wait(self, seconds: float) -> None:
        """A `wait` between turns: on sim it lets a transfer or hold play out on the virtual clock.
        On the wire nothing rings for long, so it ends as soon as the agent has responded and the
        caller is back from hold or transfer, and after `seconds` real seconds at most (a caller
        who hangs up while held waits that long)."""
        engine = await self._engine()
        if not engine.ended:
            await asyncio.wait_for(engine.agent_idle(), TURN_DEADLINE)
        give_up = asyncio.get_running_loop().time() + seconds
        while not engine.ended and engine.caller_on_hold and asyncio.get_running_loop().time() < give_up:
            await asyncio.sleep(0.02)

    async def perform_turns(self, party: RtpParty, caller_port: int | None = None) -> None:
        """Play the scenario's caller turns into the call: `user` turns are voice bursts said once
        the agent went quiet, `barge` turns the same `after` seconds into the agent's answer,
        `dtmf` is RFC 4733 events, `hangup` cues the sipp caller (which runs
        scripted_caller.xml on `caller_port`) to send its BYE. A `wait` as the last turn is left
        to the call (the agent's timers end it); see `_wait` for the others."""
        turns = list(self.scenario.turns)
        for index, turn in enumerate(turns):
            if isinstance(turn, UserTurn):
                await self._agent_quiet(party)
                self.words.append(turn.user)
                await party.say_tone(600, 0.4)
                await heard(self.words)
            elif isinstance(turn, BargeTurn):
                await asyncio.sleep(float(turn.after))  # over the agent's answer, as on sim
                self.words.append(turn.barge)
                await party.say_tone(600, 0.4)
                await heard(self.words)
            elif isinstance(turn, DtmfTurn):
                await self._agent_quiet(party)
                await party.send_dtmf(turn.dtmf)
            elif isinstance(turn, WaitTurn):
                if index == len(turns) - 1:
                    return
                await self._wait(float(turn.wait))
            elif isinstance(turn, HangupTurn):
                if caller_port is None:
                    return  # the caller's own sipp script hangs up
                engine = await self._engine()
                if not engine.ended:
                    await asyncio.wait_for(engine.agent_idle(), TURN_DEADLINE)
                if self.callers and not self.callers[0].ended:
                    hang_up_cue(self.callers[0].call_id, caller_port)
                return

    def prepare(self, call: SipCall) -> None:
        """Every leg gets the tone voice and an ear; a dialled leg's ear hears that party's turns."""
        words = self.words
        if call.leg != "caller":
            words = self.dialled_words.setdefault(call.call_id, deque())
            self.dialled.append(call)
        call.use_speech(self.synth, ToneEar(call.deliver, words))

    async def perform_leg_turns(self, name: str, party: RtpParty, trunk_port: int | None = None) -> None:
        """A dialled party's turns (scenario `legs.<name>.turns`), each after its consult agent;
        a `hangup` turn cues the trunk's sipp (scripted_callee.xml on `trunk_port`) to send BYE."""
        await until(
            lambda: any(leg.to_number == name for leg in self.dialled), TURN_DEADLINE, f"a leg to {name}"
        )
        engine = await self._engine()
        leg = next(leg for leg in self.dialled if leg.to_number == name)
        for turn in self.scenario.leg_turns(name):
            if leg.ended:
                return
            await asyncio.wait_for(engine.leg_agent_idle(leg), TURN_DEADLINE)
            if isinstance(turn, UserTurn):
                await party.quiet()
                self.dialled_words[leg.call_id].append(turn.user)
                await party.say_tone(900, 0.4)
                await heard(self.dialled_words[leg.call_id])
            elif isinstance(turn, HangupTurn):
                assert trunk_port is not None, "a leg's `hangup` turn needs the scripted callee's port"
                hang_up_cue(leg.call_id, trunk_port)
                return


HOLD_MUSIC = "https://example.com/hold-music.mp3"  # the examples' hold music, on the internet


def local_hold_music(workdir: Path) -> Path:
    """Half a second of 400 Hz as a WAV file: hold music that stays on this machine."""
    music = workdir / "music.wav"
    music.write_bytes(to_wav(tone(400, 0.5), 8000))
    return music


def _agent_source(
    scenario: Scenario, replace: dict[str, str], hold_music: Path | None
) -> str | dict[str, Any]:
    """The scenario's agent, with `replace`'s text substitutions (a hold-music URL on the internet
    swapped for a local file, a 2-minute hard stop made 6 s: tests touch only loopback, in
    modest time). Without substitutions, the path itself (relative includes keep working)."""
    if isinstance(scenario.agent, str):
        path = (EXAMPLES / scenario.agent).resolve()
        text = path.read_text()
        if not replace and (hold_music is None or HOLD_MUSIC not in text):
            return str(path)
    else:
        text = yaml.safe_dump(scenario.agent, sort_keys=False, allow_unicode=True)
    if hold_music is not None and HOLD_MUSIC in text:
        text = text.replace(HOLD_MUSIC, str(hold_music))
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


@contextlib.asynccontextmanager
async def sip_agent(
    scenario_name: str,
    *,
    proxy: str | None = None,
    replace: dict[str, str] | None = None,
    hold_music: Path | None = None,
) -> AsyncIterator[SipAgent]:
    """The example scenario's agent answering SIP calls on a free loopback port (`proxy`: where
    numbers are dialled; `replace`: text substitutions in the agent document; `hold_music`: a
    local file instead of the examples' hold music on the internet, where the document has it)."""
    scenario = load_scenario(EXAMPLES / scenario_name)
    source = _agent_source(scenario, replace or {}, hold_music)
    clock = SystemClock()
    timeline = Timeline()
    origin: list[float] = []
    transport = StubTransport(
        scenario.http,
        clock=clock,
        timeline=timeline,
        now=lambda: clock.monotonic() - (origin[0] if origin else clock.monotonic()),
        passthrough=scenario.passthrough,
        strict=scenario.strict_http,
    )
    http = httpx.AsyncClient(transport=transport)
    holder: list[SipAgent] = []

    async def on_call(call: SipCall) -> None:
        agent = holder[0]
        agent.callers.append(call)
        origin.append(call.started_at)
        engine = ScenarioCall(
            agent_source=source,
            base_dir=EXAMPLES,
            caller=call,
            switch=agent.endpoint.switch,
            clock=clock,
            timeline=timeline,
            model_base_url=agent.model.base_url,
            http=http,
            call=call,
            guard_exempt=transport.is_passthrough,
        )
        agent.calls.append(engine)
        try:
            await engine.start()
            finishing = asyncio.ensure_future(engine.finish())
            await engine.wait_ended()
            # Post-call work (post_prompt, report delivery) is proven on sim, on the virtual clock;
            # here its retries would back off in real time: give it a moment, then let it go.
            done, _ = await asyncio.wait({finishing}, timeout=POST_CALL_GRACE)
            if not done:
                finishing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await finishing
            outcome = engine.outcome
            outcome.utterances.extend(call.utterances)  # the sim driver's job, done by the channel here
            if outcome.ended_reason is None and call.ended_reason is not None:
                outcome.ended_reason = call.ended_reason
            outcome.http.extend(transport.exchanges)
            outcome.failures.extend(transport.failures)
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
            holder.append(SipAgent(scenario=scenario, endpoint=endpoint, model=model, transport=transport))
            yield holder[0]
    finally:
        await endpoint.stop()
        await http.aclose()
