"""Sentences synthesised while earlier ones play on a Twilio leg (issue 9 item 3, speech.ahead): the
second sentence of a reply is synthesised before Twilio has played the first one's end mark."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_twilio_calls import ixhello, until
from twilio_harness import ToneSynthesizer, serve_agent
from twilio_standin import TwilioStandIn

pytestmark = pytest.mark.timeout(60)

REPLY = ["Hello, Sunny Dental.", "We are open from nine until five.", "How can I help you today?"]


class LoggingSynthesizer(ToneSynthesizer):
    """Notes each synthesis in the stand-in's event log, beside Twilio's `mark-played` events."""

    def __init__(self, standin: TwilioStandIn) -> None:
        super().__init__()
        self.standin = standin

    async def synthesize(self, text: str, *, sample_rate: int, language: str | None = None) -> bytes:
        self.standin.log("synthesize", "", text)
        return await super().synthesize(text, sample_rate=sample_rate, language=language)


async def test_the_next_sentence_is_synthesised_while_the_first_plays(tmp_path: Path) -> None:
    async with serve_agent(ixhello(), {"agent": [{"text": " ".join(REPLY)}]}, tmp_path) as agent:
        agent.synth = LoggingSynthesizer(agent.standin)
        call = await agent.standin.place_call()
        await until(lambda: any(e[1:] == ("mark-played", call.sid, "say3:end") for e in agent.standin.events))
        await agent.standin.hang_up(call)
        await agent.wait_done()
    kinds = [(kind, detail) for _t, kind, _sid, detail in agent.standin.events]
    synthesised = [detail for kind, detail in kinds if kind == "synthesize"]
    assert synthesised == REPLY
    first_played = next(
        i for i, (kind, detail) in enumerate(kinds) if kind == "mark-played" and detail == "say1:end"
    )
    second_synthesised = kinds.index(("synthesize", REPLY[1]))
    assert second_synthesised < first_played, kinds
