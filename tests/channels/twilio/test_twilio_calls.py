"""Calls through the Twilio channel, end to end against the Twilio stand-in (real time, loopback)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from twilio_harness import Agent, frames_for, serve_agent
from twilio_standin import PUBLIC_URL, FakeCall, FakeStream, twilio_signature

pytestmark = pytest.mark.timeout(60)

GREETING = "Hello, Sunny Dental. How can I help?"
GOODBYE = "Thanks for calling, goodbye!"


def ixhello(**params: Any) -> dict[str, Any]:
    """Seed 003's agent: a hangup_call tool and a silence timeout."""
    return {
        "sections": {
            "main": [
                {"answer": {}},
                {
                    "ai": {
                        "prompt": {"text": "You are the front desk of Sunny Dental."},
                        "params": params,
                        "SWAIG": {
                            "functions": [
                                {
                                    "function": "hangup_call",
                                    "description": "End the call once the caller is done.",
                                    "builtin": "hangup",
                                }
                            ]
                        },
                    }
                },
            ]
        }
    }


async def until(condition: Any, timeout: float = 20.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


def rest_updates(agent: Agent, sid: str) -> list[dict[str, str]]:
    return [r.form for r in agent.standin.requests if r.path.endswith(f"/Calls/{sid}.json")]


def event_index(agent: Agent, kind: str, sid: str, detail: Any) -> int:
    for index, (_t, k, s, d) in enumerate(agent.standin.events):
        if k == kind and s == sid and (detail(d) if callable(detail) else d == detail):
            return index
    raise AssertionError(f"no {kind} event for {sid}: {agent.standin.events}")


async def talk(agent: Agent, stream: FakeStream, text: str) -> None:
    """The caller says `text` once the agent has finished responding (and it was all played)."""
    await until(lambda: bool(agent.runners))
    await asyncio.wait_for(agent.runners[-1].agent_idle(), 20)
    await until(lambda: not stream.playing)
    stream.say(text)


def played_in_full(agent: Agent, stream: FakeStream) -> None:
    """Every sentence synthesised was played to its last frame, confirmed by its own mark."""
    assert [u.frames for u in stream.utterances] == [frames_for(text) for text in agent.synth.said]


async def test_greeting_then_hangup_call_tool_hangs_up_after_the_goodbye_is_played(tmp_path: Path) -> None:
    scripts = {
        "agent": [
            {"text": GREETING},
            {"match": "all done", "text": GOODBYE, "tool_calls": [{"name": "hangup_call", "arguments": {}}]},
        ]
    }
    async with serve_agent(ixhello(), scripts, tmp_path) as agent:
        call = await agent.standin.place_call(caller_name="Ann")
        await talk(agent, call.stream, "I am all done, thanks")
        outcome = await agent.wait_done()
        await until(lambda: call.stream.closed.is_set())

    assert " ".join(agent.synth.said) == f"{GREETING} {GOODBYE}"
    assert outcome.ended_reason == "assistant-ended-call"
    stream = call.stream
    played_in_full(agent, stream)
    goodbye_mark = stream.utterances[-1].mark
    # The hang-up (REST Status=completed) went out only after Twilio played the goodbye.
    played = event_index(agent, "mark-played", call.sid, goodbye_mark)
    completed = event_index(agent, "rest", call.sid, lambda d: json.loads(d).get("Status") == "completed")
    assert played < completed
    assert rest_updates(agent, call.sid) == [{"Status": "completed"}]
    assert stream.closed_by == "twiml"  # Twilio ended the stream because the call was completed
    # The runner saw the caller's identity from the webhook's parameters.
    runner = agent.runners[0]
    assert runner.setup.call.from_number == "+15551230000"
    assert runner.setup.call.caller_name == "Ann"
    assert agent.records[0].ended_reason == "assistant-ended-call"


async def test_silence_timeout_speaks_the_ixhello_goodbye_then_hangs_up(tmp_path: Path) -> None:
    scripts = {"agent": [{"text": GREETING}]}
    async with serve_agent(ixhello(inactivity_timeout=1500), scripts, tmp_path) as agent:
        call = await agent.standin.place_call()
        outcome = await agent.wait_done()
        await until(lambda: call.stream.closed.is_set())

    default_goodbye = "I haven't heard from you, disconnecting the call now. Thank you for your time."
    assert " ".join(agent.synth.said) == f"{GREETING} {default_goodbye}"
    assert outcome.ended_reason == "silence-timed-out"
    stream = call.stream
    played_in_full(agent, stream)
    played = event_index(agent, "mark-played", call.sid, stream.utterances[-1].mark)
    completed = event_index(agent, "rest", call.sid, lambda d: json.loads(d).get("Status") == "completed")
    assert played < completed


async def test_a_forged_or_unsigned_webhook_is_refused_and_starts_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve_agent(ixhello(), {"agent": [{"text": GREETING}]}, tmp_path) as agent:
        params = {"AccountSid": "AC1", "CallSid": "CAforged", "From": "+15550001111", "To": "+15559870000"}
        url = PUBLIC_URL + "/twilio/voice"
        forged = await agent.standin.post(url, params, signature=twilio_signature("wrong-token", url, params))
        unsigned = await agent.standin.post(url, params, signature=None)
        # Signed over another URL (the local one, not the public URL Twilio called): refused too.
        local = agent.standin.local(url)
        wrong_url = await agent.standin.post(
            url, params, signature=twilio_signature(agent.standin.auth_token, local, params)
        )
        # Tampered parameters after signing.
        signature = twilio_signature(agent.standin.auth_token, url, params)
        tampered = await agent.standin.post(url, {**params, "From": "+19990000000"}, signature=signature)
        status = await agent.standin.post(
            PUBLIC_URL + "/twilio/status", {"CallSid": "CAx", "CallStatus": "completed"}, signature="bad"
        )
        assert [r.status_code for r in (forged, unsigned, wrong_url, tampered, status)] == [403] * 5
        assert agent.endpoint.calls == {}
        assert agent.endpoint.rejected_requests == 5
        assert agent.standin.requests == []
        assert agent.model.requests == []
    assert "refused POST /twilio/voice" in caplog.text


async def test_a_socket_dropped_mid_call_is_the_caller_hanging_up_and_the_call_is_recorded(
    tmp_path: Path,
) -> None:
    scripts = {"agent": [{"text": GREETING}]}
    async with serve_agent(ixhello(), scripts, tmp_path) as agent:
        call = await agent.standin.place_call()
        await until(lambda: len(call.stream.utterances) >= 1)
        await call.stream.drop()
        outcome = await agent.wait_done()
        listed = agent.store.list_calls()

    assert outcome.ended_reason == "customer-ended-call"
    assert [(r.call_id, r.ended_reason) for r in listed] == [
        (agent.records[0].call_id, "customer-ended-call")
    ]
    # Nothing to hang up: the REST API was not asked to complete a call that is gone.
    assert all(form.get("Status") != "completed" for form in rest_updates(agent, call.sid))


async def test_caller_hangs_up_with_stop_message(tmp_path: Path) -> None:
    scripts = {"agent": [{"text": GREETING}]}
    async with serve_agent(ixhello(), scripts, tmp_path) as agent:
        call: FakeCall = await agent.standin.place_call()
        await until(lambda: len(call.stream.utterances) >= 1)
        await agent.standin.hang_up(call)
        outcome = await agent.wait_done()
    assert outcome.ended_reason == "customer-ended-call"
    assert rest_updates(agent, call.sid) == []


# One sentence of 50 words (3 s of audio): the caller talks over it.
LONG = (
    "Our hours are " + ", ".join(f"on day {n} from eight in the morning until six" for n in range(1, 7)) + "."
)


async def test_barge_in_clears_twilios_buffer_and_keeps_only_the_words_played(tmp_path: Path) -> None:
    scripts = {"agent": [{"text": LONG}, {"match": "(?i)stop", "text": "Sure, what do you need?"}]}
    async with serve_agent(ixhello(), scripts, tmp_path) as agent:
        call = await agent.standin.place_call()
        await until(lambda: call.stream.received_frames >= 25)  # half a second into the long answer
        call.stream.say("Stop please")
        await until(lambda: "Sure, what do you need?" in agent.synth.said)
        await until(lambda: any(u.mark.startswith("say") and u.frames for u in call.stream.utterances[1:]))
        await agent.standin.hang_up(call)
        outcome = await agent.wait_done()

    assert call.stream.clears >= 1
    cut = call.stream.utterances[0]
    first_sentence = agent.synth.said[0]
    assert 0 < cut.frames < frames_for(first_sentence)  # the rest of the audio was dropped by `clear`
    [barge] = [e for e in outcome.timeline.events if e.kind == "barge-in"]
    assert barge.data["text"] == "Stop please"
    # The model's next request holds only the words the caller heard before the cut.
    second = agent.model.requests_of("agent")[1].messages
    assistant = [m["content"] for m in second if m["role"] == "assistant"]
    heard = " ".join(str(text) for text in assistant)
    assert heard and LONG.startswith(heard) and len(heard) < len(LONG)


async def test_dtmf_from_the_stream_reaches_the_agent(tmp_path: Path) -> None:
    scripts = {"agent": [{"text": GREETING}, {"match": "DTMF: 7", "text": "You pressed seven."}]}
    async with serve_agent(ixhello(), scripts, tmp_path) as agent:
        call = await agent.standin.place_call()
        await until(lambda: bool(agent.runners))
        await asyncio.wait_for(agent.runners[-1].agent_idle(), 20)
        await call.stream.dtmf("7")
        await until(lambda: "You pressed seven." in agent.synth.said)
        await agent.standin.hang_up(call)
        outcome = await agent.wait_done()
    assert [e.data for e in outcome.timeline.events if e.kind == "dtmf"] == [{"digits": "7"}]
