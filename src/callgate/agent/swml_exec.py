"""A small SWML interpreter: runs a document's `main` section verb by verb on the call.

Verbs it runs: answer, ai, hangup, play, connect, transfer, sip_refer, send_sms, label, goto, execute,
return, set, unset, sleep. `ai` runs the conversation and sets `ai_result` and `return_value`
(success | failed), then execution goes on with the next verb. connect / sip_refer / transfer to a
number or SIP URI become `Transfer` decisions for call control, with the context's `origin`:
"document" for the document's own sections and its data_map expression actions, "server" for SWML
a customer's webhook returned (the destination policy trusts the latter, and checks the former
against the document's literals, since a template may have been filled from model arguments).
connect's `from` is the caller ID; sip_refer's `to_uri` and transfer's `dest` are destinations.
Any other verb is recorded in the timeline and skipped — never a crash. When `main` runs out, the
call is hung up.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from callgate.agent.decisions import Decision, Hangup, Transfer, TransferOrigin, TransferResult
from callgate.durations import parse_duration
from callgate.swaig.guarded_transport import with_guard
from callgate.swaig.urlguard import Guard
from callgate.swml.models import AI, Verb
from callgate.telephony.base import Call, EndedReason
from callgate.telephony.clock import Clock
from callgate.template import expand_value

log = logging.getLogger(__name__)

MAX_STEPS = 1000  # a goto loop must not spin forever


@dataclass
class SwmlContext:
    """What the interpreter needs from the call around it."""

    call: Call
    clock: Clock
    decide: Callable[[Decision], Awaitable[TransferResult | None]]
    is_live: Callable[[], bool]
    run_ai: Callable[[AI], Awaitable[str]]
    note: Callable[..., None]
    answer: Callable[[], Awaitable[None]]
    http: httpx.AsyncClient | None = None
    sms_webhook_url: str | None = None
    sms_guard: Guard | None = None  # the private-address guard, for a document's own SMS webhook
    media_guard: Guard | None = None  # the private-address guard, for `play` URLs
    variables: dict[str, Any] = field(default_factory=dict)
    origin: TransferOrigin = "document"
    server_values: frozenset[str] | None = None
    # A function's SWML action stops at a failed connect so the model hears why; the document's
    # own sections go on with the next verb (SignalWire sets `connect_result` and continues).
    stop_on_failed_transfer: bool = False


class SwmlInterpreter:
    def __init__(self, context: SwmlContext, sections: dict[str, list[Verb]]) -> None:
        self.ctx = context
        self.sections = sections
        self.handed_on = False
        self.transfer_failure: str | None = None  # why the last connect/transfer failed

    def _expand(self, value: Any) -> Any:
        scope = {**self.ctx.variables, "vars": self.ctx.variables}
        return expand_value(value, scope)

    async def run(self, section: str = "main", *, hang_up_at_end: bool = True) -> None:
        await self._run_section(section, depth=0)
        if hang_up_at_end and self.ctx.is_live():
            await self.ctx.decide(Hangup(EndedReason.ASSISTANT_ENDED_CALL, "end of SWML"))

    async def _run_section(self, name: str, depth: int) -> None:
        verbs = self.sections.get(name)
        if verbs is None:
            self.ctx.note("swml-error", error=f"no section named {name!r}")
            return
        labels = {verb.label: index for index, verb in enumerate(verbs) if verb.label}
        labels.update({str(verb.args): i for i, verb in enumerate(verbs) if verb.name == "label"})
        index = 0
        steps = 0
        while index < len(verbs) and self.ctx.is_live() and not self.handed_on:
            steps += 1
            if steps > MAX_STEPS:
                self.ctx.note("swml-error", error="too many steps (goto loop?)")
                return
            verb = verbs[index]
            index += 1
            jump = await self._run_verb(verb, depth)
            if jump == "return":
                return
            if isinstance(jump, str):
                if jump not in labels:
                    self.ctx.note("swml-error", error=f"goto: no label {jump!r}")
                    return
                index = labels[jump]

    async def _run_verb(self, verb: Verb, depth: int) -> str | None:
        name = verb.name
        args = verb.args if isinstance(verb.args, AI) else self._expand(verb.args)
        if name == "ai" and isinstance(args, AI):
            await self.ctx.answer()
            self.ctx.variables.setdefault("answer_result", "success")
            result = await self.ctx.run_ai(args)
            self.ctx.variables["ai_result"] = result
            self.ctx.variables["return_value"] = result
            return None
        if name == "answer":
            await self.ctx.answer()
            self.ctx.variables["answer_result"] = "success"
        elif name == "hangup":
            await self.ctx.decide(Hangup(EndedReason.ASSISTANT_ENDED_CALL, "swml hangup"))
        elif name in ("connect", "sip_refer", "transfer"):
            destination = _destination(name, args)
            if destination is None:
                if (
                    name == "transfer"
                    and isinstance(args, dict)
                    and str(args.get("dest", "")) in self.sections
                ):
                    await self._run_section(str(args["dest"]), depth + 1)
                    return "return"
                self.ctx.note("swml-error", error=f"{name}: no destination in {args!r}")
                return None
            caller_id = _caller_id(args)
            headers = _headers(args)
            transfer_result = await self.ctx.decide(
                Transfer(
                    destination=destination,
                    source="swml",
                    caller_id=caller_id,
                    headers=headers,
                    origin=self.ctx.origin,
                    server_values=self.ctx.server_values,
                )
            )
            ok = transfer_result is None or transfer_result.outcome == "completed"
            self.ctx.variables["connect_result"] = "connected" if ok else "failed"
            self.ctx.variables["return_value"] = "success" if ok else "failed"
            if ok:
                self.handed_on = True
            else:
                assert transfer_result is not None
                self.transfer_failure = transfer_result.for_model()
                if self.ctx.stop_on_failed_transfer:
                    return "return"
        elif name == "send_sms":
            await self._send_sms(args)
        elif name == "play":
            await self._play(args)
        elif name == "sleep":
            seconds = _sleep_seconds(args)
            if seconds:
                await self.ctx.clock.sleep(seconds)
        elif name == "set" and isinstance(args, dict):
            self.ctx.variables.update(args)
        elif name == "unset":
            for key in args if isinstance(args, list) else [args]:
                self.ctx.variables.pop(str(key), None)
        elif name == "goto":
            return str(args.get("label") if isinstance(args, dict) else args)
        elif name == "execute" and depth < 16:
            target = args.get("dest") if isinstance(args, dict) else args
            await self._run_section(str(target), depth + 1)
        elif name == "return":
            if args is not None:
                self.ctx.variables["return_value"] = args
            return "return"
        elif name == "label":
            pass
        else:
            self.ctx.note("swml-skipped", verb=name)
        return None

    async def _send_sms(self, args: Any) -> None:
        body = args if isinstance(args, dict) else {}
        if not self.ctx.sms_webhook_url or self.ctx.http is None:
            self.ctx.note("sms-skipped", to=body.get("to_number"), reason="no SMS webhook configured")
            self.ctx.variables["send_sms_result"] = "skipped"
            return
        guard = self.ctx.sms_guard
        problem = guard.url_refusal(self.ctx.sms_webhook_url) if guard is not None else None
        if problem is not None:
            self.ctx.note("sms-failed", to=body.get("to_number"), error=f"refused: {problem}")
            self.ctx.variables["send_sms_result"] = "failed"
            return
        try:
            response = await self.ctx.http.post(
                self.ctx.sms_webhook_url, json=body, timeout=10.0, extensions=with_guard(guard)
            )
            ok = response.status_code < 300
        except httpx.HTTPError as exc:
            self.ctx.note("sms-failed", error=str(exc))
            ok = False
        self.ctx.variables["send_sms_result"] = "success" if ok else "failed"
        self.ctx.note("sms-sent" if ok else "sms-failed", to=body.get("to_number"))

    async def _play(self, args: Any) -> None:
        urls: list[str] = []
        if isinstance(args, str):
            urls = [args]
        elif isinstance(args, dict):
            if "url" in args:
                urls = [str(args["url"])]
            urls += [str(u) for u in args.get("urls", [])]
        for url in urls:
            if url.startswith("say:"):
                await self.ctx.call.say(url[4:])
            else:
                playback = await self.ctx.call.play(url, guard=self.ctx.media_guard)
                await playback.wait()


def _destination(verb: str, args: Any) -> str | None:
    if isinstance(args, str):
        return args
    if not isinstance(args, dict):
        return None
    for key in ("to", "to_uri", "dest"):
        value = args.get(key)
        if isinstance(value, str) and value:
            if verb == "transfer" and not (value.startswith(("+", "sip:", "sips:")) or value.isdigit()):
                return None  # a transfer to another SWML section or URL
            return value
    for group in ("serial", "parallel"):
        devices = args.get(group)
        if isinstance(devices, list) and devices and isinstance(devices[0], dict) and devices[0].get("to"):
            return str(devices[0]["to"])
    return None


def _caller_id(args: Any) -> str | None:
    if not isinstance(args, dict):
        return None
    value = args.get("from")
    if value is None:
        for group in ("serial", "parallel"):
            devices = args.get(group)
            if isinstance(devices, list) and devices and isinstance(devices[0], dict):
                value = devices[0].get("from")
                break
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) and str(value) else None


def _headers(args: Any) -> dict[str, str]:
    """SIP headers of a connect (`headers: [{name, value}]`) or sip_refer (`headers: {k: v}`)."""
    raw = args.get("headers") if isinstance(args, dict) else None
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return {
            str(h["name"]): str(h.get("value", ""))
            for h in raw
            if isinstance(h, dict) and isinstance(h.get("name"), str)
        }
    return {}


def _sleep_seconds(args: Any) -> float:
    if isinstance(args, dict):
        args = args.get("duration", 0)
    if isinstance(args, int | float):
        return float(args) / 1000.0  # SWML sleep is in milliseconds
    try:
        return parse_duration(str(args))
    except ValueError:
        return 0.0
