"""The consult agent: briefs the supervisor on their own leg during a warm transfer (seed 001).

It is a small turn loop, like the caller's AgentSession but with exactly three tools
(`connect_to_caller`, `decline_transfer {reason}`, `redirect_transfer {destination}`) and the call
summary in its instructions. Turn-taking (DESIGN §6): the first model request is made as soon as the
supervisor answers and its text is spoken to them; each supervisor utterance is a new request; after
a connect or decline verdict no further request is made. Its speech stays on the supervisor's leg.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from callgate.agent.history import Conversation, parse_arguments
from callgate.control.warm.consult import CONNECT, DECLINE, REDIRECT, ConsultVerdict
from callgate.llm.client import ChatModel
from callgate.llm.types import ModelError, ModelSettings, TextDelta, ToolCall, ToolCallsReady
from callgate.telephony.base import Call, CallEnded, CallerSpeech, MediaTimeout, RemoteHangup, SpeechRefused
from callgate.telephony.clock import Clock
from callgate.timeline import CallOutcome

DEFAULT_CONSULT_PROMPT = (
    "You are an assistant briefing a colleague who is about to take over a phone call; the caller is "
    "on hold. Greet them, give them the summary below and answer their questions about the call. "
    f"When they agree to take the call, call {CONNECT}. If they cannot, call {DECLINE} with their "
    f"reason. If they say someone else should take it, call {REDIRECT} with that number or address."
)
MAX_TOOL_ROUNDS = 4

CONSULT_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": CONNECT,
            "description": "The supervisor is ready: connect them with the caller.",
            "parameters": {"type": "object", "properties": {}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": DECLINE,
            "description": "The supervisor cannot take the call.",
            "parameters": {
                "type": "object",
                "properties": {"reason": {"type": "string", "description": "why, in their words"}},
                "required": ["reason"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": REDIRECT,
            "description": "The supervisor names someone else to take the call.",
            "parameters": {
                "type": "object",
                "properties": {"destination": {"type": "string", "description": "phone number or SIP URI"}},
                "required": ["destination"],
            },
        },
    },
]


def consult_instructions(prompt: str | None, summary: str) -> str:
    return f"{prompt or DEFAULT_CONSULT_PROMPT}\n\nSummary of the call so far:\n{summary}"


class ConsultAgent:
    """One briefing on one supervisor leg; `run()` returns the verdict."""

    def __init__(
        self,
        *,
        leg: Call,
        leg_name: str,
        model: ChatModel,
        settings: ModelSettings,
        instructions: str,
        clock: Clock,
        outcome: CallOutcome,
        started_at: float,
    ) -> None:
        self.leg = leg
        self.leg_name = leg_name
        self.model = model
        self.settings = settings
        self.conversation = Conversation(system_prompt=instructions)
        self.clock = clock
        self.outcome = outcome
        self._started_at = started_at
        self._inputs: asyncio.Queue[str | None] = asyncio.Queue()  # None: the supervisor left
        self._idle = asyncio.Event()
        self.finished = False

    def note(self, kind: str, **data: Any) -> None:
        now = self.clock.monotonic() - self._started_at
        self.outcome.timeline.add(now, kind, leg=self.leg_name, **data)

    async def wait_idle(self) -> None:
        """Returns once the agent waits for the supervisor, or has finished."""
        await self._idle.wait()

    async def run(self) -> ConsultVerdict:
        listener = asyncio.ensure_future(self._listen())
        try:
            verdict = await self._respond()
            while verdict is None:
                self._idle.set()
                heard = await self._inputs.get()
                self._idle.clear()
                if heard is None:
                    verdict = ConsultVerdict("hangup")
                    break
                self.conversation.add_user(heard, self._now())
                verdict = await self._respond()
            self.note("consult-verdict", verdict=verdict.kind, reason=verdict.reason, to=verdict.destination)
            return verdict
        finally:
            self.finished = True
            self._idle.set()
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    def _now(self) -> float:
        return self.clock.monotonic() - self._started_at

    async def _listen(self) -> None:
        async for event in self.leg.events():
            if isinstance(event, CallerSpeech) and event.final:
                self.note("supervisor-said", text=event.text)
                self._inputs.put_nowait(event.text)
            elif isinstance(event, RemoteHangup | MediaTimeout):
                self.note("supervisor-hangup")
                self._inputs.put_nowait(None)
                return
        self._inputs.put_nowait(None)

    async def _respond(self) -> ConsultVerdict | None:
        """Model rounds for one input: speak the text, act on the tools; a verdict ends the briefing."""
        for _round in range(MAX_TOOL_ROUNDS):
            self.note("consult-request", messages=len(self.conversation.request_messages()))
            text: list[str] = []
            calls: list[ToolCall] = []
            try:
                async for event in self.model.stream(
                    self.conversation.request_messages(), CONSULT_TOOLS, self.settings
                ):
                    if isinstance(event, TextDelta):
                        text.append(event.text)
                    elif isinstance(event, ToolCallsReady):
                        calls = list(event.calls)
            except ModelError as error:
                # Say nothing odd to the supervisor; they can speak again, or the consult timeout ends it.
                self.note("consult-model-error", error_kind=error.kind, message=str(error))
                return None
            spoken = "".join(text).strip()
            self.conversation.add_assistant(spoken, calls, self._now())
            if spoken:
                self.note("consult-said", text=spoken)
                try:
                    await self.leg.say(spoken)
                except (CallEnded, SpeechRefused):
                    return ConsultVerdict("hangup")
            if not calls:
                return None
            verdict = self._tools(calls)
            if verdict is not None:
                return verdict
        return None

    def _tools(self, calls: list[ToolCall]) -> ConsultVerdict | None:
        """The first verdict among the tool calls; every call gets a result so the model can go on."""
        verdict: ConsultVerdict | None = None
        for call in calls:
            arguments = parse_arguments(call.arguments)
            self.note("consult-tool", name=call.name, arguments=arguments)
            result = "Done."
            if verdict is not None:
                result = "Not run: the transfer was already decided."
            elif call.name == CONNECT:
                verdict = ConsultVerdict("connect")
            elif call.name == DECLINE:
                verdict = ConsultVerdict("decline", reason=str(arguments.get("reason") or "").strip())
            elif call.name == REDIRECT:
                destination = str(arguments.get("destination") or "").strip()
                if destination:
                    verdict = ConsultVerdict("redirect", destination=destination)
                else:
                    result = "Error: a destination (phone number or SIP URI) is required."
            else:
                result = f"Error: unknown tool {call.name!r}; use {CONNECT}, {DECLINE} or {REDIRECT}."
            self.conversation.add_tool_result(call.id, result, self._now())
        return verdict


class ConsultRegistry:
    """The consult agents of a call by supervisor leg, so a driver can wait for one to be idle."""

    def __init__(self) -> None:
        self._agents: dict[str, ConsultAgent] = {}
        self._added = asyncio.Event()

    def add(self, agent: ConsultAgent) -> None:
        self._agents[agent.leg.call_id] = agent
        self._added.set()
        self._added = asyncio.Event()

    def get(self, call_id: str) -> ConsultAgent | None:
        return self._agents.get(call_id)

    def open_legs(self) -> list[Call]:
        """The supervisor legs still up (a live view counts them)."""
        return [agent.leg for agent in self._agents.values() if not agent.leg.ended]

    async def wait_idle(self, call_id: str) -> None:
        """Returns once the consult agent on that leg has started and finished responding."""
        while call_id not in self._agents:
            await self._added.wait()
        await self._agents[call_id].wait_idle()
