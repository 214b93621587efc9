"""The Twilio channel's pieces on their own: TwiML, Media Streams messages, signatures, config."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET

import pytest
from twilio_standin import twilio_signature

from callgate.channels.twilio import media, twiml
from callgate.channels.twilio.config import TwilioConfig, TwilioConfigError
from callgate.channels.twilio.signature import SignatureCheck
from callgate.telephony.base import Destination


def test_dial_to_sip_carries_headers_in_the_uri_and_reports_progress() -> None:
    destination = Destination(kind="sip", value="sip:desk@pbx.example.com", headers={"X-Ticket": "42 a&b"})
    document = twiml.dial(
        destination, caller_id="+15550001111", status_url="https://p/s", action_url="https://p/a", timeout=20
    )
    dial = ET.fromstring(document).find("Dial")
    assert dial is not None
    assert (dial.get("callerId"), dial.get("action"), dial.get("timeout")) == (
        "+15550001111",
        "https://p/a",
        "20",
    )
    sip = dial.find("Sip")
    assert sip is not None
    assert sip.text == "sip:desk@pbx.example.com?X-Ticket=42%20a%26b"
    assert sip.get("statusCallback") == "https://p/s"
    assert "answered" in (sip.get("statusCallbackEvent") or "")


def test_dial_to_a_number_with_an_extension_sends_its_digits_once_answered() -> None:
    destination = Destination(kind="number", value="+15550002222", extension="104")
    dial = ET.fromstring(
        twiml.dial(
            destination, caller_id=None, status_url="https://p/s", action_url="https://p/a", timeout=30
        )
    ).find("Dial")
    assert dial is not None and dial.get("callerId") is None
    number = dial.find("Number")
    assert number is not None and number.text == "+15550002222" and number.get("sendDigits") == "ww104"


def test_stream_twiml_passes_the_calls_facts_as_parameters() -> None:
    root = ET.fromstring(
        twiml.connect_stream("wss://x/twilio/stream", {"From": "+1 <555>", "CallerName": "Ann & Bo"})
    )
    stream = root.find("Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://x/twilio/stream"
    assert {p.get("name"): p.get("value") for p in stream.findall("Parameter")} == {
        "From": "+1 <555>",
        "CallerName": "Ann & Bo",
    }


def test_conference_ends_when_either_party_leaves() -> None:
    conference = ET.fromstring(twiml.conference("room-1")).find("Dial/Conference")
    assert conference is not None and conference.text == "room-1"
    assert conference.get("endConferenceOnExit") == "true"


def test_media_messages_parse_and_build() -> None:
    start = media.parse(
        json.dumps(
            {
                "event": "start",
                "streamSid": "MZ1",
                "start": {
                    "callSid": "CA1",
                    "customParameters": {"From": "+1"},
                    "mediaFormat": {"sampleRate": 8000},
                },
            }
        )
    )
    assert start == media.Start(stream_sid="MZ1", call_sid="CA1", parameters={"From": "+1"})
    payload = base64.b64encode(b"\xff" * 160).decode()
    assert media.parse(json.dumps({"event": "media", "media": {"payload": payload}})) == media.Media(
        b"\xff" * 160
    )
    assert media.parse('{"event": "mark", "mark": {"name": "say1:end"}}') == media.Mark("say1:end")
    assert media.parse('{"event": "dtmf", "dtmf": {"digit": "5"}}') == media.DtmfDigit("5")
    assert media.parse('{"event": "something-new"}') is None  # future events are ignored
    for bad in (
        "not json",
        "[]",
        '{"event": "media", "media": {"payload": "@@"}}',
        '{"event": "start", "start": {}}',
    ):
        with pytest.raises(media.ProtocolError):
            media.parse(bad)
    built = json.loads(media.mark_message("MZ1", "say2:5"))
    assert built == {"event": "mark", "streamSid": "MZ1", "mark": {"name": "say2:5"}}
    assert json.loads(media.clear_message("MZ1")) == {"event": "clear", "streamSid": "MZ1"}


def test_pcm_becomes_whole_20ms_mulaw_frames() -> None:
    frames = media.to_mulaw_frames(b"\x00\x10" * 170)  # 170 samples: one frame and a padded second
    assert [len(f) for f in frames] == [160, 160]
    assert len(media.to_pcm(frames[0])) == 320


def test_signatures_are_checked_over_the_public_url_with_query() -> None:
    config = TwilioConfig(account_sid="AC1", auth_token="secret", public_url="https://agent.example.test/")
    check = SignatureCheck(config)
    params = {"CallSid": "CA1", "From": "+15550001111"}
    signed = twilio_signature("secret", "https://agent.example.test/twilio/voice?x=1", params)
    assert check.valid("/twilio/voice", "x=1", params, signed)
    assert not check.valid("/twilio/voice", "", params, signed)
    assert not check.valid("/twilio/voice", "x=1", {**params, "From": "+1999"}, signed)
    assert not check.valid("/twilio/voice", "x=1", params, None)


def test_config_refuses_what_cannot_work() -> None:
    with pytest.raises(TwilioConfigError, match="public-url"):
        TwilioConfig(account_sid="AC1", auth_token="t", public_url="agent.example.test")
    with pytest.raises(TwilioConfigError, match="TWILIO_AUTH_TOKEN"):
        TwilioConfig(account_sid="AC1", auth_token="", public_url="https://agent.example.test")
    config = TwilioConfig.from_env(
        {"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t"}, "http://127.0.0.1:8080"
    )
    assert config.stream_url == "ws://127.0.0.1:8080/twilio/stream"
    assert config.api_base_url == "https://api.twilio.com"
