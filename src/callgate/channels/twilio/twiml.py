"""The TwiML callgate answers and sends, built with the official `twilio` package's VoiceResponse.

- `connect_stream`: the voice webhook's answer and an outbound leg's script — a bidirectional Media
  Stream back to callgate, with the call's facts as `<Parameter>`s.
- `dial`: a blind transfer — `<Dial callerId=…>` with a `<Number>` (an extension is sent as DTMF once
  answered) or a `<Sip>` (custom headers ride in the URI's query, as Twilio documents), reporting
  the destination's progress to our dial-status URL and the `<Dial>`'s end to our action URL.
- `conference`: the warm transfer's join — both legs are moved into one named conference.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

from callgate.telephony.base import Destination


def connect_stream(stream_url: str, parameters: Mapping[str, str]) -> str:
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=stream_url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def sip_uri(destination: Destination) -> str:
    """The destination's SIP URI with its headers as URI parameters (`?X-Ref=1&X-Team=b`)."""
    uri = (
        destination.value
        if destination.value.lower().startswith(("sip:", "sips:"))
        else "sip:" + destination.value
    )
    if not destination.headers:
        return uri
    query = "&".join(f"{quote(k, safe='-')}={quote(v, safe='')}" for k, v in destination.headers.items())
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


def dial(
    destination: Destination,
    *,
    caller_id: str | None,
    status_url: str,
    action_url: str,
    timeout: int,
) -> str:
    response = VoiceResponse()
    verb = Dial(caller_id=caller_id or None, action=action_url, method="POST", timeout=timeout)
    events = "initiated ringing answered completed"
    if destination.kind == "sip":
        verb.sip(
            sip_uri(destination),
            status_callback=status_url,
            status_callback_event=events,
            status_callback_method="POST",
        )
    else:
        verb.number(
            destination.value,
            # `w` waits half a second: the far end's IVR needs a moment after answering.
            send_digits=f"ww{destination.extension}" if destination.extension else None,
            status_callback=status_url,
            status_callback_event=events,
            status_callback_method="POST",
        )
    response.append(verb)
    return str(response)


def conference(room: str) -> str:
    """Join the named conference; it starts on entry and ends when either party leaves."""
    response = VoiceResponse()
    verb = Dial()
    verb.conference(room, start_conference_on_enter=True, end_conference_on_exit=True, beep=False)
    response.append(verb)
    return str(response)


def hangup() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)
