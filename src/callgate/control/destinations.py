"""Dynamic transfer destinations: Vapi's `transfer-destination-request` (seed 002).

A `builtin: transfer` function with `transfer.destinations: []` does not know where to go; the
customer's server decides. We POST Vapi's server message

    {"message": {"type": "transfer-destination-request", "timestamp": <epoch ms>,
                 "call": {...}, "customer": {...}, "phoneNumber": {...}, "assistant": {...},
                 "artifact": {"messages": [...], "messagesOpenAIFormatted": [...],
                              "transcript": "..."}}}

to `transfer.destination_url` (basic auth from destination_auth_user/password, extra headers from
`destination_headers`) and accept Vapi's answer:

    {"destination": {"type": "number", "number", "callerId", "extension", "message"}
                  | {"type": "sip", "sipUri", "sipHeaders", "message"}
                  | {"type": "assistant", "assistantName", "message"},
     "message": "..."}            or            {"error": "why not"}

Choices: the destination's own `message` wins over the top-level one; `error` becomes the failure
code `destination-error: <error>` (the model hears it as the tool result); no answer within the
timeout (default 10 s) is `timeout`; a refused connection, an HTTP status outside 2xx, a body that
is not a JSON object or an answer with neither a usable destination nor an error is
`destination-error: <what went wrong>`. The request goes through the call's HTTP client with the
same private-address guard as SWAIG webhooks. Nothing here raises for a bad server.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from callgate.agent.decisions import DynamicTarget
from callgate.swaig.fetch import Credentials, fetch
from callgate.swaig.provenance import server_strings
from callgate.swaig.urlguard import Guard
from callgate.swml.limits import load_json

DEFAULT_TIMEOUT = 10.0
MAX_ANSWER_BYTES = 64_000


@dataclass(frozen=True)
class CallFacts:
    """What the request says about the call."""

    call_id: str
    from_number: str
    to_number: str
    caller_name: str = ""
    started_epoch: float = 0.0  # when the call began, seconds since the epoch
    now_epoch: float = 0.0


@dataclass(frozen=True)
class Resolved:
    """Where the server said to go."""

    kind: Literal["number", "sip", "assistant"]
    value: str  # the number, the SIP URI, or the assistant's name
    caller_id: str | None = None
    extension: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    message: str | None = None

    @property
    def destination(self) -> str:
        return f"assistant:{self.value}" if self.kind == "assistant" else self.value


@dataclass(frozen=True)
class Answer:
    """The outcome of one request: `resolved`, or `failure` (a DESIGN §3 failure code)."""

    resolved: Resolved | None = None
    failure: str | None = None
    status: int | None = None
    # The values of the answer the server chose (none derived from the model's arguments).
    values: frozenset[str] = frozenset()


def _ms(epoch_seconds: float) -> int:
    return round(epoch_seconds * 1000)


def _iso(epoch_seconds: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch_seconds, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


def artifact_messages(
    log: tuple[dict[str, Any], ...] | list[dict[str, Any]], started_epoch: float
) -> list[dict[str, Any]]:
    """The conversation as Vapi's `artifact.messages` (roles system, user, bot, tool_calls,
    tool_call_result; `time` in epoch ms, `secondsFromStart`)."""
    out: list[dict[str, Any]] = []
    for entry in log:
        seconds = float(entry.get("timestamp", 0.0) or 0.0)
        base = {"time": _ms(started_epoch + seconds), "secondsFromStart": round(seconds, 3)}
        role = entry.get("role")
        if role == "system":
            out.append({"role": "system", "message": _content(entry), **base})
        elif role == "user":
            out.append({"role": "user", "message": _content(entry), "endTime": base["time"], **base})
        elif role == "assistant":
            if _content(entry):
                out.append({"role": "bot", "message": _content(entry), "endTime": base["time"], **base})
            if entry.get("tool_calls"):
                out.append({"role": "tool_calls", "message": "", "toolCalls": entry["tool_calls"], **base})
        elif role == "tool":
            out.append(
                {
                    "role": "tool_call_result",
                    "toolCallId": entry.get("tool_call_id", ""),
                    "result": _content(entry),
                    **base,
                }
            )
    return out


def transcript(messages: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> str:
    """Vapi's transcript text: one `AI:` / `User:` line per spoken message."""
    lines = []
    for message in messages:
        if message.get("role") == "user" and _content(message):
            lines.append(f"User: {_content(message)}")
        elif message.get("role") == "assistant" and _content(message):
            lines.append(f"AI: {_content(message)}")
    return "\n".join(lines)


def build_request(target: DynamicTarget, call: CallFacts) -> dict[str, Any]:
    """The JSON body POSTed to the destination server."""
    customer: dict[str, Any] = {"number": call.from_number}
    if call.caller_name:
        customer["name"] = call.caller_name
    phone_number = {"number": call.to_number}
    assistant = {"name": target.assistant_name} if target.assistant_name else {}
    messages = [m for m in target.messages if m.get("role") != "system"]
    return {
        "message": {
            "type": "transfer-destination-request",
            "timestamp": _ms(call.now_epoch),
            "call": {
                "id": call.call_id,
                "type": "inboundPhoneCall",
                "status": "in-progress",
                "createdAt": _iso(call.started_epoch),
                "customer": customer,
                "phoneNumber": phone_number,
            },
            "customer": customer,
            "phoneNumber": phone_number,
            "assistant": assistant,
            "artifact": {
                "messages": artifact_messages(target.log, call.started_epoch),
                "messagesOpenAIFormatted": list(target.messages),
                "transcript": transcript(messages),
            },
        }
    }


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def parse_answer(data: Any) -> Answer:
    """Read the server's answer (already parsed JSON)."""
    if not isinstance(data, dict):
        return Answer(failure=f"destination-error: malformed answer (a JSON {type(data).__name__})")
    error = data.get("error")
    if error not in (None, ""):
        return Answer(failure=f"destination-error: {error if isinstance(error, str) else json.dumps(error)}")
    destination = data.get("destination")
    if destination is None:
        return Answer(failure="destination-error: malformed answer (neither destination nor error)")
    if not isinstance(destination, dict):
        return Answer(failure="destination-error: malformed answer (destination is not an object)")
    message = _text(destination.get("message")) or _text(data.get("message"))
    kind = destination.get("type")
    if kind == "number":
        number = _text(destination.get("number"))
        if number is None:
            return Answer(failure="destination-error: malformed answer (number destination without number)")
        return Answer(
            Resolved(
                "number",
                number,
                caller_id=_text(destination.get("callerId")),
                extension=_text(destination.get("extension")),
                message=message,
            )
        )
    if kind == "sip":
        uri = _text(destination.get("sipUri"))
        if uri is None:
            return Answer(failure="destination-error: malformed answer (sip destination without sipUri)")
        raw_headers = destination.get("sipHeaders")
        headers = (
            {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in raw_headers.items()}
            if isinstance(raw_headers, dict)
            else {}
        )
        return Answer(Resolved("sip", uri, headers=headers, message=message))
    if kind == "assistant":
        name = _text(destination.get("assistantName"))
        if name is None:
            return Answer(
                failure="destination-error: malformed answer (assistant destination without assistantName)"
            )
        return Answer(Resolved("assistant", name, message=message))
    return Answer(failure=f"destination-error: malformed answer (unknown destination type {kind!r})")


class DestinationClient:
    """Asks a customer's destination server where a transfer goes."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        allow_private: bool = False,
        document_host: str | None = None,
        guard_exempt: Callable[[str], bool] | None = None,
    ) -> None:
        self.http = http
        self.allow_private = allow_private
        self.document_host = document_host
        self.guard_exempt = guard_exempt

    async def resolve(self, target: DynamicTarget, call: CallFacts) -> Answer:
        credentials = (
            Credentials(target.user or "", target.password or "")
            if target.user is not None or target.password is not None
            else None
        )
        fetched = await fetch(
            self.http,
            "POST",
            target.url,
            json_body=build_request(target, call),
            headers=dict(target.headers),
            credentials=credentials,
            timeout=target.timeout or DEFAULT_TIMEOUT,
            max_bytes=MAX_ANSWER_BYTES,
            guard=Guard(self.allow_private, self.document_host, self.guard_exempt),
        )
        if fetched.kind == "blocked":
            return Answer(failure=f"destination-error: {fetched.error}")
        if fetched.kind == "timeout":
            return Answer(failure="timeout")
        if not fetched.ok:
            return Answer(failure=f"destination-error: {fetched.error}", status=fetched.status)
        status = fetched.status
        if status is None or not 200 <= status <= 299:
            return Answer(failure=f"destination-error: HTTP {status}", status=status)
        try:
            # Within the document depth limit: deeper is not an answer the call can use.
            data = load_json(fetched.body.decode("utf-8", errors="replace"))
        except ValueError:
            return Answer(failure="destination-error: malformed answer (not JSON)", status=status)
        answer = parse_answer(data)
        return Answer(answer.resolved, answer.failure, status, server_strings(data, target.model_values))
