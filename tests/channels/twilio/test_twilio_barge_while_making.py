"""A sentence whose audio is still being made when the caller barges in is not played (speech.ahead):
on a Twilio leg the barge-in finds nothing playing to `clear`, so the say() waiting for that audio
must drop it itself once it is ready."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_twilio_calls import ixhello, until
from twilio_harness import Agent, ToneSynthesizer, frames_for, serve_agent

pytestmark = pytest.mark.timeout(60)

FIRST = "Alpha one."
SLOW = "Bravo takes a long while to make."
AFTER = "Sure, what do you need?"


class SlowSecondSentence(ToneSynthesizer):
    """The tone voice, except that SLOW is ready only once the leg has dropped what it was making
    ahead (the barge-in): the caller talks while that sentence is still being made."""

    def __init__(self, agent: Agent) -> None:
        super().__init__()
        self.agent = agent

    async def synthesize(self, text: str, *, sample_rate: int, language: str | None = None) -> bytes:
        if text == SLOW:
            await until(lambda: any(leg._ahead.clears for leg in self.agent.endpoint.calls.values()))
        return await super().synthesize(text, sample_rate=sample_rate, language=language)


async def test_a_sentence_barged_in_while_being_made_is_not_streamed(tmp_path: Path) -> None:
    scripts = {"agent": [{"text": f"{FIRST} {SLOW}"}, {"match": "(?i)stop", "text": AFTER}]}
    async with serve_agent(ixhello(), scripts, tmp_path) as agent:
        agent.synth = SlowSecondSentence(agent)
        call = await agent.standin.place_call()
        await until(lambda: [u.frames for u in call.stream.utterances] == [frames_for(FIRST)])
        call.stream.say("Stop please")  # the first sentence has played; the second is being made
        await until(lambda: len(call.stream.utterances) >= 2)
        await agent.standin.hang_up(call)
        outcome = await agent.wait_done()

    assert [e.data["text"] for e in outcome.timeline.events if e.kind == "barge-in"] == ["Stop please"]
    assert SLOW in agent.synth.said  # its audio was made, after the barge-in …
    # … and never sent: the caller heard the first sentence, then the answer to the barge-in.
    assert [u.frames for u in call.stream.utterances] == [frames_for(FIRST), frames_for(AFTER)]
