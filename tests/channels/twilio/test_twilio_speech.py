"""A Twilio call with real voices: espeak-ng speech both ways, the speech package's listener (Silero VAD)
finding the caller's words in the μ-law stream, and marks timed by the real audio's length."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_twilio_calls import GOODBYE, GREETING, event_index, ixhello, rest_updates, talk, until
from twilio_harness import RecordingSynthesizer, serve_agent

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is installed by make test"),
]


async def test_espeak_voices_through_the_stream_and_the_real_listener(tmp_path: Path) -> None:
    scripts = {
        "agent": [
            {"text": GREETING},
            {"match": "all done", "text": GOODBYE, "tool_calls": [{"name": "hangup_call", "arguments": {}}]},
        ]
    }
    async with serve_agent(ixhello(), scripts, tmp_path, speech="espeak") as agent:
        call = await agent.standin.place_call()
        await talk(agent, call.stream, "I am all done, thank you very much")
        outcome = await agent.wait_done(timeout=60)
        await until(lambda: call.stream.closed.is_set())

    synth = agent.synth
    assert isinstance(synth, RecordingSynthesizer)
    assert outcome.ended_reason == "assistant-ended-call"
    # The real VAD found the caller's speech in the stream (the oracle only names its words).
    assert [e.data["text"] for e in outcome.timeline.events if e.kind == "caller-said"] == [
        "I am all done, thank you very much"
    ]
    # Every sentence was played to its last frame before its mark came back, the goodbye included,
    # and only then was the call completed.
    stream = call.stream
    assert [u.frames for u in stream.utterances] == [synth.frames[text] for text in synth.said]
    played = event_index(agent, "mark-played", call.sid, stream.utterances[-1].mark)
    completed = event_index(agent, "rest", call.sid, lambda d: json.loads(d).get("Status") == "completed")
    assert played < completed
    assert rest_updates(agent, call.sid) == [{"Status": "completed"}]
