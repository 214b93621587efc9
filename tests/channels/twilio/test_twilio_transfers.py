"""Transfers and REST failures through the Twilio channel, against the Twilio stand-in."""

from __future__ import annotations

import json
import math
import wave
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_twilio_calls import GREETING, event_index, played_in_full, rest_updates, talk, until
from twilio_harness import serve_agent
from twilio_standin import ACCOUNT_SID, TWILIO_NUMBER, Destination

from callgate.channels.twilio.config import TwilioConfig
from callgate.channels.twilio.rest import TwilioRest
from callgate.telephony.base import DialFailed

pytestmark = pytest.mark.timeout(60)

SALES = "+15550002222"
SUPERVISOR = "+15550003333"


def transfer_agent(**destination: Any) -> dict[str, Any]:
    entry = {"name": "sales", "number": SALES, "message": "Connecting you to sales now.", **destination}
    return {
        "sections": {
            "main": [
                {
                    "ai": {
                        "prompt": {"text": "You are Frank at Acme. Transfer callers to sales when they ask."},
                        "SWAIG": {
                            "functions": [
                                {
                                    "function": "transfer_call",
                                    "description": "Transfer the caller to a department.",
                                    "builtin": "transfer",
                                    "transfer": {"destinations": [entry]},
                                }
                            ]
                        },
                    }
                }
            ]
        }
    }


TRANSFER_SCRIPT = [
    {"text": GREETING},
    {"match": "(?i)sales", "tool_calls": [{"name": "transfer_call", "arguments": {"destination": "sales"}}]},
]


def dial_of(twiml: str) -> ET.Element:
    dial = ET.fromstring(twiml).find("Dial")
    assert dial is not None, twiml
    return dial


async def test_blind_transfer_updates_the_call_with_dial_and_the_policys_caller_id(tmp_path: Path) -> None:
    async with serve_agent(
        transfer_agent(callerId=TWILIO_NUMBER), {"agent": TRANSFER_SCRIPT}, tmp_path
    ) as agent:
        agent.standin.destinations[SALES] = Destination("answer")
        call = await agent.standin.place_call()
        await talk(agent, call.stream, "Sales please")
        outcome = await agent.wait_done()

    assert outcome.ended_reason == "assistant-forwarded-call"
    assert [(t.to, t.mode, t.result) for t in outcome.transfers] == [(SALES, "blind", "completed")]
    [update] = rest_updates(agent, call.sid)  # one update, and no hang-up of the transferred call
    dial = dial_of(update["Twiml"])
    assert dial.get("callerId") == TWILIO_NUMBER  # the destination's callerId, which the document names
    number = dial.find("Number")
    assert number is not None and number.text == SALES
    assert call.dialled == [{"to": SALES, "callerId": TWILIO_NUMBER, "sendDigits": ""}]
    # The transfer message was played in full before the call was moved.
    played_in_full(agent, call.streams[0])
    assert "Connecting you to sales now." in " ".join(agent.synth.said)
    played = event_index(agent, "mark-played", call.sid, call.streams[0].utterances[-1].mark)
    moved = event_index(agent, "rest", call.sid, lambda d: "Twiml" in json.loads(d))
    assert played < moved
    assert call.streams[0].closed_by == "twiml"


async def test_blind_transfer_to_sip_without_caller_id_uses_the_callers_number_and_extension(
    tmp_path: Path,
) -> None:
    document = transfer_agent(number=None, sipUri="sip:sales@pbx.example.com")
    del document["sections"]["main"][0]["ai"]["SWAIG"]["functions"][0]["transfer"]["destinations"][0][
        "number"
    ]
    async with serve_agent(document, {"agent": TRANSFER_SCRIPT}, tmp_path) as agent:
        agent.standin.destinations["sip:sales@pbx.example.com"] = Destination("answer")
        call = await agent.standin.place_call(from_="+15551239999")
        await talk(agent, call.stream, "Sales please")
        outcome = await agent.wait_done()

    assert outcome.ended_reason == "assistant-forwarded-call"
    [update] = rest_updates(agent, call.sid)
    dial = dial_of(update["Twiml"])
    assert dial.get("callerId") == "+15551239999"  # no caller ID set: the caller's own number
    sip = dial.find("Sip")
    assert sip is not None and sip.text == "sip:sales@pbx.example.com"


async def test_a_busy_transfer_brings_the_caller_back_and_the_model_hears_why(tmp_path: Path) -> None:
    script = [
        *TRANSFER_SCRIPT,
        {"match": "busy", "text": "Sorry, sales is busy right now."},
    ]
    async with serve_agent(transfer_agent(), {"agent": script}, tmp_path) as agent:
        agent.standin.destinations[SALES] = Destination("busy")
        call = await agent.standin.place_call()
        await talk(agent, call.stream, "Sales please")
        await until(lambda: "Sorry, sales is busy right now." in agent.synth.said)
        await until(lambda: len(call.streams) == 2 and len(call.streams[1].utterances) >= 1)
        await agent.standin.hang_up(call)
        outcome = await agent.wait_done()

    assert [(t.to, t.result, t.reason) for t in outcome.transfers] == [(SALES, "failed", "busy")]
    assert outcome.ended_reason == "customer-ended-call"
    # Twilio ran our <Dial action>: its answer reconnected the caller on a second stream, where the
    # model's answer to the failure was played.
    assert len(call.streams) == 2
    assert call.streams[1].utterances[-1].frames > 0
    assert ET.fromstring(call.twiml[-1]).find("Connect") is not None
    last_request = agent.model.requests_of("agent")[-1]
    assert "busy" in json.dumps(last_request.messages[-1])


@pytest.mark.parametrize(
    ("status", "reason"),
    [(401, "credentials refused (401)"), (429, "rate-limited (429)"), (503, "server error (503)")],
)
async def test_a_rest_failure_during_a_transfer_is_a_failed_transfer_not_a_crash(
    tmp_path: Path, status: int, reason: str
) -> None:
    script = [*TRANSFER_SCRIPT, {"match": "unreachable", "text": "I could not transfer you."}]
    async with serve_agent(transfer_agent(), {"agent": script}, tmp_path) as agent:
        call = await agent.standin.place_call()
        await talk(agent, call.stream, "Sales please")
        agent.standin.fail_updates = status
        await until(lambda: "I could not transfer you." in agent.synth.said)
        agent.standin.fail_updates = None
        await until(lambda: not call.stream.playing and len(call.stream.utterances) >= 3)
        await agent.standin.hang_up(call)
        outcome = await agent.wait_done()

    [record] = outcome.transfers
    assert record.result == "failed"
    assert record.reason == f"destination-error: unreachable (Twilio transfer: {reason})"
    assert len(call.streams) == 1  # the call never left its stream
    assert outcome.ended_reason == "customer-ended-call"


async def test_a_hang_up_whose_rest_request_fails_still_ends_the_call(tmp_path: Path) -> None:
    scripts = {
        "agent": [{"text": GREETING}, {"match": "bye", "text": 'Goodbye! <imsagent_hangup endword="Bye."/>'}]
    }
    async with serve_agent(
        {"sections": {"main": [{"ai": {"prompt": {"text": "Hi"}}}]}}, scripts, tmp_path
    ) as agent:
        call = await agent.standin.place_call()
        await talk(agent, call.stream, "ok bye")
        agent.standin.fail_updates = 500
        outcome = await agent.wait_done()
        await until(lambda: call.stream.closed.is_set())

    assert outcome.ended_reason == "assistant-ended-call"
    assert [r.status for r in agent.standin.requests] == [500]
    # Closing the stream ends <Connect><Stream>, and with it the call.
    assert call.stream.closed_by == "callgate"


async def test_ending_a_call_that_is_already_over_is_not_an_error(tmp_path: Path) -> None:
    async with serve_agent(
        {"sections": {"main": [{"ai": {"prompt": {"text": "Hi"}}}]}}, {}, tmp_path
    ) as agent:
        rest = TwilioRest(
            TwilioConfig(
                account_sid=ACCOUNT_SID,
                auth_token=agent.standin.auth_token,
                public_url="https://x.test",
                api_base_url=agent.standin.base_url,
            )
        )
        try:
            assert await rest.end("CA" + "f" * 32) is False  # 404: no such call (any more)
            with pytest.raises(DialFailed) as failure:
                await rest.redirect("CA" + "f" * 32, "<Response/>", "transfer")
            assert failure.value.code == "unreachable"
        finally:
            await rest.aclose()


def hold_music(path: Path) -> Path:
    t = np.arange(16000) / 16000  # one second at 16 kHz: the channel resamples it to 8 kHz
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes((3000 * np.sin(2 * math.pi * 523 * t)).astype("<i2").tobytes())
    return path


async def test_warm_transfer_dials_a_second_call_briefs_the_supervisor_and_joins_them_in_a_conference(
    tmp_path: Path,
) -> None:
    music = hold_music(tmp_path / "hold.wav")
    document = {
        "sections": {
            "main": [
                {
                    "ai": {
                        "prompt": {"text": "You are Riley at Acme. Transfer to a supervisor when asked."},
                        "SWAIG": {
                            "functions": [
                                {
                                    "function": "transfer_to_supervisor",
                                    "description": "Warm-transfer the caller to a supervisor.",
                                    "parameters": {
                                        "type": "object",
                                        "properties": {"destination": {"type": "string"}},
                                    },
                                    "builtin": "transfer",
                                    "transfer": {
                                        "mode": "warm",
                                        "destinations": [SUPERVISOR],
                                        "hold_music": str(music),
                                        "ring_timeout": 10,
                                        "consult_timeout": 30,
                                        "msg": "Please hold while I get a supervisor.",
                                    },
                                }
                            ]
                        },
                    }
                }
            ]
        }
    }
    scripts = {
        "agent": [
            {"text": GREETING},
            {
                "match": "supervisor",
                "tool_calls": [{"name": "transfer_to_supervisor", "arguments": {"destination": SUPERVISOR}}],
            },
        ],
        "summary": [{"text": "Ann wants a refund for her last bill."}],
        "consult": [
            {"text": "Hi, Ann wants a refund for her last bill. Can you take her call?"},
            {"match": "(?i)put them through", "tool_calls": [{"name": "connect_to_caller", "arguments": {}}]},
        ],
    }
    async with serve_agent(document, scripts, tmp_path) as agent:
        agent.standin.destinations[SUPERVISOR] = Destination(
            "answer", after=0.5, says=["Yes, put them through."]
        )
        call = await agent.standin.place_call()
        await talk(agent, call.stream, "A supervisor please")
        outcome = await agent.wait_done()
        supervisor = next(c for c in agent.standin.calls.values() if c.direction == "outbound")
        await until(lambda: supervisor.stream.closed.is_set() and call.stream.closed.is_set())

    assert outcome.ended_reason == "assistant-forwarded-call"
    assert [(t.to, t.mode, t.result) for t in outcome.transfers] == [(SUPERVISOR, "warm", "completed")]
    # The supervisor's leg: a REST-created call whose TwiML opens its own stream back to callgate.
    [create] = [r.form for r in agent.standin.requests if r.path.endswith("/Calls.json")]
    assert create["To"] == SUPERVISOR and create["From"] == "+15551230000"
    assert ET.fromstring(create["Twiml"]).find("Connect/Stream") is not None
    assert create["StatusCallback"].endswith("/twilio/status")
    # The consult agent spoke on the supervisor's stream, and the supervisor was heard.
    assert len(supervisor.stream.utterances) >= 1
    assert "Hi, Ann wants a refund for her last bill." in " ".join(agent.synth.said)
    # Hold music (the WAV file) reached the caller while the supervisor was briefed.
    assert any(name.startswith("play") for name in call.stream.marks_sent_back)
    # Both legs were moved into one conference: callgate is out of the audio path.
    rooms = {c.conference for c in (call, supervisor)}
    assert len(rooms) == 1 and None not in rooms
    caller_updates = rest_updates(agent, call.sid)
    assert all("Status" not in form for form in caller_updates)  # nobody was hung up
    assert agent.standin.calls[supervisor.sid].status == "in-progress"
