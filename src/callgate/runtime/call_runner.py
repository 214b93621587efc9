"""Runs one call: the document's SWML on the caller's leg, the agent, call control and timers.

This is where agent and control meet (DESIGN §2): the agent emits decisions, the controller carries
them out; caller events from the channel feed both. Nothing here knows which channel it runs on.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from callgate.agent.barge import BargePolicy
from callgate.agent.decisions import Decision, Transfer, TransferOrigin, TransferResult
from callgate.agent.history import Conversation
from callgate.agent.routes import resolve_routes
from callgate.agent.session import GOODBYE_BROKEN, HOOK_TIMEOUT_SECONDS, AgentSession
from callgate.agent.steps import StepMachine
from callgate.agent.swml_exec import SwmlContext, SwmlInterpreter
from callgate.control.call_state import CallState
from callgate.control.controller import CallController
from callgate.control.destinations import DestinationClient
from callgate.control.policy import DestinationPolicy
from callgate.control.timers import (
    DEFAULT_ATTENTION_PROMPT,
    DEFAULT_INACTIVITY_GOODBYE,
    DEFAULT_INACTIVITY_MS,
    SilencePolicy,
    SilenceWatch,
    check_ms,
)
from callgate.durations import parse_hard_stop
from callgate.llm.client import ChatModel
from callgate.llm.factory import model_settings
from callgate.records.timing import TimedModel
from callgate.redact import redact
from callgate.runtime.audio_fetch import attach_source_fetcher, guarded_fetcher
from callgate.runtime.consult import ConsultRegistry
from callgate.runtime.warm_wiring import install_warm
from callgate.swaig.context import CallContext
from callgate.swaig.fetch import safe_url
from callgate.swaig.guarded_transport import with_guard
from callgate.swaig.runtime import HANGUP_HOOKS, FunctionRuntime
from callgate.swaig.urlguard import Guard
from callgate.swml.errors import DocumentError, Issue, Severity
from callgate.swml.fetch import is_url
from callgate.swml.loader import fetch_document, load_document
from callgate.swml.models import AI, Document, Verb
from callgate.swml.pom import render_pom
from callgate.telephony.base import (
    Call,
    CallEnded,
    CallerSpeech,
    Dtmf,
    EndedReason,
    MediaTimeout,
    RemoteHangup,
    SpeechStarted,
    Switch,
)
from callgate.telephony.clock import Clock, Deadline, within
from callgate.template import TemplateEnv, expand, with_env
from callgate.timeline import CallOutcome

log = logging.getLogger(__name__)

ModelFactory = Callable[[str, AI], ChatModel]
"""Makes the model client for a role (`agent`, `summary`, `consult`, `post_prompt`) of a document."""

APOLOGY_SECONDS = 15.0
"""How long a crashed call's apology may take before the line is closed anyway."""

FINAL_WORDS_SECONDS = 60.0
"""How long the hard stop's last turn (the model's answer to hard_stop_prompt, spoken) may take
before the call is hung up anyway."""

CLOSING_SECONDS = 60.0
"""How long a timer's goodbye may take to play before the line is closed anyway."""


@dataclass
class CallSetup:
    document: Document
    call: Call
    clock: Clock
    http: httpx.AsyncClient
    model_for: ModelFactory
    context: CallContext
    switch: Switch | None = None
    sms_webhook_url: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # CALLGATE_* / OPENAI_* settings of the process
    # URLs let past the private-address guard (a scenario's passthrough list).
    guard_exempt: Callable[[str], bool] | None = None
    # A live server's calls contain their own crashes: an unexpected exception ends the call with an
    # apology and `pipeline-error` instead of propagating (a scenario wants the crash reported).
    contain_crashes: bool = False
    # What a conversation's earlier calls left (params.save_conversation), by conversation_id.
    recall: Callable[[str], str | None] | Callable[[str], Awaitable[str | None]] | None = None


def prompt_text(
    ai: AI, variables: dict[str, Any], now: float | None = None, global_data: dict[str, Any] | None = None
) -> str:
    """The system prompt: `text` or rendered `pom`, with `${…}` call variables (and `@{…}` functions,
    at the call's clock time `now`) expanded, then SignalWire's `params.conscience`."""
    text = ai.prompt.text if ai.prompt.text is not None else render_pom(ai.prompt.pom or [])
    if ai.params.conscience:
        text = f"{text}\n\n{ai.params.conscience}" if text else ai.params.conscience
    # meta_data is never part of the scope: it must not reach the model.
    data = ai.global_data if global_data is None else global_data
    return expand(text, with_env({**variables, "global_data": data}, TemplateEnv(now=now)))


class CallRunner:
    def __init__(
        self, setup: CallSetup, outcome: CallOutcome | None = None, *, started_at: float | None = None
    ) -> None:
        self.setup = setup
        self.clock = setup.clock
        self.outcome = outcome or CallOutcome()
        # The call's time origin; a channel that records its own times passes its origin here.
        self.started_at = self.clock.monotonic() if started_at is None else started_at
        ai = setup.document.find_ai()
        self.controller = CallController(
            setup.call,
            setup.switch,
            self.clock,
            self.outcome,
            self.started_at,
            policy=DestinationPolicy.for_document(
                setup.document, setup.call.from_number, setup.call.to_number
            ),
            destinations=DestinationClient(
                setup.http,
                allow_private=bool(ai is not None and ai.params.swaig_allow_private_urls),
                document_host=setup.context.document_host,
                guard_exempt=setup.guard_exempt,
            ),
        )
        self.controller._handoff = self._hand_off
        self.controller.on_transferring = self.caller_went_on_hold
        # A hand-off to another agent document: its AI verb and the conversation carried over.
        self._next: tuple[AI, Conversation] | None = None
        self.session: AgentSession | None = None
        self.conversation: Conversation | None = None
        self.functions: FunctionRuntime | None = None
        self._early_speech: list[str] = []
        self._main_variables: dict[str, Any] = {}
        self._watch: SilenceWatch | None = None
        self._main: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None  # a timer's goodbye, then the hang-up
        self._crash: BaseException | None = None
        self._session_ready = asyncio.Event()
        self.ended = asyncio.Event()
        # Warm transfer (control/warm): the consult agents by supervisor leg, and a wake-up for
        # drivers waiting on an agent whose caller has just been put on hold.
        self.consults = ConsultRegistry()
        self._held = asyncio.Event()
        self.warm = install_warm(self)
        # For the call record (records/): when things happened (clock.monotonic()), the AI verb that
        # ran last and the agent's model wrapped to time each reply.
        self.answered_at: float | None = None
        self.ai_started_at: float | None = None
        self.ai_ended_at: float | None = None
        self.ended_at: float | None = None
        self.ai: AI | None = None
        self.agent_models: list[TimedModel] = []

    # ------------------------------------------------------------ for drivers (scenario runner, servers)

    @property
    def caller_on_hold(self) -> bool:
        return self.controller.state.state in (CallState.HELD, CallState.TRANSFERRING)

    def caller_went_on_hold(self) -> None:
        held, self._held = self._held, asyncio.Event()
        held.set()

    async def agent_idle(self) -> None:
        """Returns once the agent has finished responding to the latest input, the caller is on hold
        (a warm transfer is under way), or the call ended."""
        while not self.ended.is_set():
            if self.caller_on_hold:
                return
            session = self.session
            if session is not None and not session.finished and not session.busy:
                return
            if session is None or session.finished:
                # Between AI sessions (SWML running) or after: wait for progress.
                waiter = asyncio.ensure_future(self._session_ready.wait())
                ended = asyncio.ensure_future(self.ended.wait())
                await asyncio.wait({waiter, ended}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                ended.cancel()
                if session is not None and session.finished and self.session is session:
                    # The AI verb is over and SWML goes on; only the end of the call remains.
                    if not self.ended.is_set():
                        await self.ended.wait()
                    return
                continue
            idle = asyncio.ensure_future(session.wait_idle())
            ended = asyncio.ensure_future(self.ended.wait())
            held = asyncio.ensure_future(self._held.wait())
            await asyncio.wait({idle, ended, held}, return_when=asyncio.FIRST_COMPLETED)
            idle.cancel()
            ended.cancel()
            held.cancel()
            if self.caller_on_hold:
                return
            if session.finished and not self.ended.is_set():
                continue
            return

    def note(self, kind: str, **data: Any) -> None:
        self.outcome.timeline.add(self.clock.monotonic() - self.started_at, kind, **data)

    async def end(self, reason: EndedReason, detail: str = "") -> None:
        """End the call from outside (an operator, a server shutting down): hang up if the leg is
        still up, then stop whatever the agent had in flight; `run()` returns soon after."""
        if self.controller.live:
            self.note("ended-from-outside", reason=str(reason), **({"detail": detail} if detail else {}))
            await self.controller.hangup(reason, detail)
        if self.session is not None:
            self.session.speaker.cancel()
            self.session.close()
        if self._main is not None and not self._main.done():
            self._main.cancel()

    # ------------------------------------------------------------ the call

    async def run(self) -> CallOutcome:
        # play() URLs (hold music, playback_bg, …) pass the document's private-address guard.
        fetcher = guarded_fetcher(
            self.setup.http,
            self.guard,
            lambda url, why: self.note("play-source-failed", source=url, reason=why),
        )
        attach_source_fetcher(self.setup.call, fetcher)
        events = asyncio.create_task(self._read_events(), name="call-events")
        events.add_done_callback(self._events_done)
        context = self._swml_context()
        self._main_variables = context.variables
        interpreter = SwmlInterpreter(context, self.setup.document.sections)
        self._main = asyncio.create_task(interpreter.run(), name="swml-main")
        crash: BaseException | None = None
        try:
            try:
                await self._main
            except asyncio.CancelledError:
                if self._crash is not None:
                    crash = self._crash
                elif self.controller.state.state != CallState.ENDED:
                    raise
            except CallEnded:
                self.controller.remote_hangup()
            except Exception as exc:
                crash = exc
            if crash is not None:
                # Whoever runs the call, the caller hears an apology and the record says why.
                await self._crashed(crash)
                if not self.setup.contain_crashes:
                    raise crash
        finally:
            if self._watch is not None:
                self._watch.stop()
            await self._finish_closing()
            if self.controller.state.state != CallState.ENDED:
                await self.controller.hangup(EndedReason.ASSISTANT_ENDED_CALL, "call runner finished")
            if not events.done():
                events.cancel()
            await asyncio.gather(events, return_exceptions=True)
            self.ended_at = self.clock.monotonic()
            await self._hangup_hook()
            self.ended.set()
        return self.outcome

    async def _hangup_hook(self) -> None:
        """SignalWire's `hangup_hook` (or `stop_hook`): once the call has ended, whatever ended it,
        before the post-call report. A hook that fails or hangs is noted and given up: the report
        goes out regardless."""
        functions = self.functions
        name = functions.hook(HANGUP_HOOKS) if functions is not None else None
        if functions is None or name is None:
            return
        self.note("hook", name=name, moment="hangup", ended_reason=str(self.outcome.ended_reason))
        log_ = self.conversation.call_log() if self.conversation is not None else None
        try:
            result = await within(self.clock, HOOK_TIMEOUT_SECONDS, functions.call(name, "{}", call_log=log_))
        except Deadline:
            self.note("hook-failed", name=name, error=f"no answer within {HOOK_TIMEOUT_SECONDS:g}s")
            return
        except Exception as exc:  # the report must still go out
            log.exception("hangup hook %s crashed", name)
            self.note("hook-failed", name=name, error=type(exc).__name__)
            return
        self.note("hook-result", name=name, response=result.response, error=result.error)

    def _events_done(self, task: asyncio.Task[Any]) -> None:
        """A task of the call (reading the caller's events, a timer, a goodbye) failed: the call
        cannot go on, and the failure must not vanish with the task."""
        if task.cancelled() or task.exception() is None:
            return
        if self._crash is None:
            self._crash = task.exception()
        if self._main is not None and not self._main.done():
            self._main.cancel()

    def _background(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(self._events_done)
        return task

    async def _finish_closing(self) -> None:
        """A timer's goodbye still playing is heard to its end before the call is torn down."""
        closer = self._closer
        if closer is None or closer.done():
            return
        try:
            await within(self.clock, CLOSING_SECONDS, asyncio.wait({closer}))
        except Deadline:
            self.note("closing-timeout", seconds=CLOSING_SECONDS)
            closer.cancel()
        except asyncio.CancelledError:
            # The call is being torn down from outside: the rest of the clean-up must still run.
            closer.cancel()

    async def _crashed(self, error: BaseException) -> None:
        """An unexpected failure ends this call alone: the caller hears an apology (the same
        goodbye as a model that keeps failing), then the call ends with `pipeline-error`."""
        reason = redact(f"{type(error).__name__}: {error}")[:300]
        log.error("call failed: %s", reason, exc_info=error)  # the JSON log redacts the traceback
        self.note("crash", error=reason)
        session = self.session
        if session is not None:
            session.speaker.cancel()
            session.close()
        if self.controller.live and self.controller.state.state != CallState.RINGING:
            try:
                await within(self.clock, APOLOGY_SECONDS, self.setup.call.say(GOODBYE_BROKEN))
                self.note("apology", text=GOODBYE_BROKEN)
            except Exception as exc:  # Deadline, or the leg may be what broke
                self.note("apology-failed", error=f"{type(exc).__name__}: {exc}")
        try:
            await self.controller.hangup(EndedReason.PIPELINE_ERROR, f"internal-error: {reason}")
        except Exception as exc:
            log.warning("hang-up after a failure failed too: %s", redact(str(exc)))
            self.controller.remote_hangup("internal-error")

    def _swml_context(self, origin: TransferOrigin = "document") -> SwmlContext:
        return SwmlContext(
            origin=origin,
            call=self.setup.call,
            clock=self.clock,
            decide=self._decide,
            is_live=lambda: self.controller.live,
            run_ai=self._run_ai,
            note=self.note,
            answer=self._answer,
            http=self.setup.http,
            sms_webhook_url=self._sms_webhook_url(),
            sms_guard=self.guard() if self._document_sms_url() else None,
            media_guard=self.guard(),
            variables=self._variables(),
        )

    def swml_results(self) -> dict[str, Any]:
        """The SWML variables the call's verbs set (`ai_result`, `answer_result`, `return_value`…),
        reported as SignalWire's SWMLVars."""
        return {k: v for k, v in self._main_variables.items() if k.endswith("_result") or k == "return_value"}

    def _document_sms_url(self) -> str | None:
        ai = self.setup.document.find_ai()
        return ai.params.sms_webhook_url if ai is not None and ai.params.sms_webhook_url else None

    def _sms_webhook_url(self) -> str | None:
        """The document's `params.sms_webhook_url`, else the set-up's (CALLGATE_SMS_WEBHOOK_URL)."""
        return (
            self._document_sms_url()
            or self.setup.sms_webhook_url
            or self.setup.env.get("CALLGATE_SMS_WEBHOOK_URL")
        )

    def guard(self) -> Guard:
        """The private-address guard for the requests the call's document controls (DESIGN §4)."""
        ai = self.setup.document.find_ai()
        return Guard(
            allow_private=bool(ai is not None and ai.params.swaig_allow_private_urls),
            document_host=self.setup.context.document_host,
            exempt=self.setup.guard_exempt,
        )

    def _variables(self) -> dict[str, Any]:
        ctx = self.setup.context
        return {
            "call_id": ctx.call_id,
            "caller_id_num": ctx.caller_id_num,
            "caller_id_name": ctx.caller_id_name,
            "to_number": ctx.to_number,
            "call": ctx.call_scope(),
            **self.setup.variables,
        }

    async def _answer(self) -> None:
        if self.controller.state.state == CallState.RINGING:
            await self.controller.answer()
            self.answered_at = self.clock.monotonic()

    async def _decide(self, decision: Decision) -> TransferResult | None:
        return await self.controller.execute(decision)

    async def _run_swml_action(
        self,
        document: dict[str, Any],
        transfer: bool,
        origin: TransferOrigin = "document",
        server_values: frozenset[str] | None = None,
    ) -> tuple[bool, str | None]:
        """A function's SWML action runs on the call now: (handed the call on?, why a connect failed).

        `origin`: "server" when a webhook returned the SWML, else "document"; `server_values` are the
        values that server's answer held (destination policy)."""
        sections_raw = document.get("sections", document)
        sections: dict[str, list[Verb]] = {}
        if isinstance(sections_raw, dict):
            for name, verbs in sections_raw.items():
                if isinstance(verbs, list):
                    sections[name] = [
                        Verb(name=str(key), args=value)
                        for item in verbs
                        if isinstance(item, dict)
                        for key, value in item.items()
                    ]
        context = self._swml_context(origin)
        context.server_values = server_values
        context.stop_on_failed_transfer = True
        interpreter = SwmlInterpreter(context, sections)
        await interpreter.run(hang_up_at_end=False)
        if interpreter.transfer_failure is not None:
            return False, interpreter.transfer_failure
        return interpreter.handed_on or transfer or not self.controller.live, None

    async def _run_ai(self, ai: AI) -> str:
        session = await self._build_session(
            ai, Conversation(system_prompt=prompt_text(ai, self._variables(), self.clock.time()))
        )
        open_call = not ai.params.wait_for_user and not self._early_speech
        for text_heard in self._early_speech:
            session.submit_user(text_heard)
        self._early_speech.clear()
        while True:
            result = await self._run_session(session, open_call=open_call)
            if self._next is None or not self.controller.live:
                return result
            # An `assistant` transfer: the new agent greets the caller with the history it inherited.
            next_ai, conversation = self._next
            self._next = None
            ready = self.session
            if ready is None or ready.finished:
                ready = await self._build_session(next_ai, conversation)
            session = ready
            open_call = True

    async def _build_session(self, ai: AI, conversation: Conversation) -> AgentSession:
        setup = self.setup
        if ai.params.app_name:
            setup.context.app_name = ai.params.app_name  # webhooks and the report name the same app
        conversation_id = ai.params.conversation_id
        if conversation_id and not setup.context.conversation_id:
            # SignalWire's params.conversation_id ties calls of one conversation together.
            setup.context.conversation_id = conversation_id
        conversation.window = ai.params.history_window or conversation.window
        if self.session is None:
            await self._seed(ai, conversation)
        functions = FunctionRuntime(
            ai, setup.context, setup.http, clock=self.clock, guard_exempt=setup.guard_exempt
        )
        await functions.load_includes()
        previous = self.functions
        if (
            previous is not None
            and previous.global_data
            and previous.ai.params.persist_global_data
            and ai.params.persist_global_data
        ):
            # SignalWire's persist_global_data (default true): a new AI session of the same call starts
            # with the global_data the last one left, restored over its own document's.
            functions.global_data.update(copy.deepcopy(previous.global_data))
            self.note("global-data-restored", keys=sorted(previous.global_data))
            conversation.system_prompt = prompt_text(
                ai, self._variables(), self.clock.time(), functions.global_data
            )
        steps = self._step_machine(ai, functions)
        routes = resolve_routes(ai, conversation.system_prompt + (steps.all_text() if steps else ""))
        model = TimedModel(setup.model_for("agent", ai), self.clock)
        self.agent_models.append(model)
        self.ai = ai
        if self.ai_started_at is None:
            self.ai_started_at = self.clock.monotonic()
        settings = model_settings(ai.prompt, ai.params.ai_model, self.setup.env)
        if settings.max_tokens is None and ai.params.max_response_tokens:
            settings = dataclasses.replace(settings, max_tokens=ai.params.max_response_tokens)
        session = AgentSession(
            ai=ai,
            call=setup.call,
            model=model,
            settings=settings,
            functions=functions,
            routes=routes,
            conversation=conversation,
            decide=self._decide,
            is_live=lambda: self.controller.live,
            run_swml=self._run_swml_action,
            clock=self.clock,
            outcome=self.outcome,
            started_at=self.started_at,
            steps=steps,
        )
        self.functions, self.conversation, self.session = functions, conversation, session
        return session

    async def _seed(self, ai: AI, conversation: Conversation) -> None:
        """The first agent's history: what earlier calls of the conversation left (save_conversation),
        then SignalWire's `params.convo` messages."""
        cid = self.setup.context.conversation_id
        if ai.params.save_conversation and cid and self.setup.recall is not None:
            memory = self.setup.recall(cid)
            if inspect.isawaitable(memory):  # a live store is read off the event loop
                memory = await memory
            if memory:
                conversation.system_prompt += f"\n\nEarlier calls in this conversation:\n{memory}"
                self.note("conversation-recalled", conversation_id=cid, chars=len(memory))
        for message in ai.params.convo:
            if message["role"] == "user":
                conversation.add_user(message["content"], 0.0)
            elif message["role"] == "assistant":
                conversation.add_assistant(message["content"], [], 0.0)
            else:
                conversation.add_system(message["content"], 0.0)

    def _step_machine(self, ai: AI, functions: FunctionRuntime) -> StepMachine | None:
        """SignalWire's prompt.contexts, with `${…}` call variables expanded in their texts. global_data
        is read when a text is rendered, so answers gathered (gather_info) or set by functions show in
        later steps — as `${global_data.key}` and, like SignalWire's prompt variables, as `${key}`."""
        if not ai.prompt.contexts:
            return None
        variables = self._variables()

        def render(text: str) -> str:
            data = functions.global_data
            scope = {**data, **variables, "global_data": data}
            return expand(text, with_env(scope, TemplateEnv(now=self.clock.time())))

        language = ai.languages[0].code if ai.languages else "en-US"
        return StepMachine(ai.prompt.contexts, render=render, language=language)

    async def _run_session(self, session: AgentSession, *, open_call: bool) -> str:
        ai = session.ai
        watch = self._make_watch(ai, session)
        session.on_idle = lambda: watch.set_waiting(not self.caller_on_hold)
        session.on_busy = lambda: watch.set_waiting(False)
        self._watch = watch
        watch_task = self._background(watch.run(), "silence-watch")
        hard_stop = self._hard_stop_task(ai, session)
        self._session_ready.set()
        try:
            return await session.run(open_call=open_call)
        finally:
            self.ai_ended_at = self.clock.monotonic()
            watch.stop()
            watch_task.cancel()
            if hard_stop is not None:
                hard_stop.cancel()
            self._session_ready.set()

    # ------------------------------------------------------------ assistant hand-off

    def _assistant_source(self, name: str, decision: Transfer) -> str | None:
        if decision.dynamic is not None and name in decision.dynamic.assistants:
            return decision.dynamic.assistants[name]
        ai = self.ai
        for function in ai.SWAIG.functions if ai is not None else []:
            if function.transfer is not None and name in function.transfer.assistants:
                return function.transfer.assistants[name]
        return None

    async def _load_assistant(self, source: str) -> Document:
        if is_url(source):
            guard = self.guard()
            problem = guard.url_refusal(source)
            if problem is not None:
                raise DocumentError(
                    [Issue(Severity.ERROR, "", None, f"refused: {problem}", safe_url(source))]
                )
            return (
                await fetch_document(source, client=self.setup.http, extensions=with_guard(guard))
            ).document
        path = Path(source)
        if not path.is_absolute():
            # Relative to the document that names it (when it came from a file), else the cwd.
            own = self.setup.document.source
            base = Path(own).parent if own and not is_url(own) and Path(own).is_file() else Path.cwd()
            path = base / path
        return load_document(path).document

    async def _hand_off(self, decision: Transfer) -> TransferResult:
        """Hand the call to another agent document (Vapi `assistant` destination): a new AgentSession
        for its `ai` verb on the same call, with the new system prompt and the old messages."""
        name = decision.destination.split(":", 1)[1]
        source = self._assistant_source(name, decision)
        if source is None:
            return TransferResult("failed", f"destination-error: unknown assistant {name!r}")
        try:
            document = await self._load_assistant(source)
        except DocumentError as exc:
            # The details (paths, lines) go to the timeline; the model hears only what failed.
            self.note("assistant-load-failed", assistant=name, error=str(exc))
            return TransferResult("failed", f"destination-error: cannot load assistant {name!r}")
        ai = document.find_ai()
        if ai is None:
            return TransferResult("failed", f"destination-error: assistant {name!r} has no ai verb")
        self.controller.policy.add_document(document)
        old = self.conversation
        conversation = Conversation(system_prompt=prompt_text(ai, self._variables(), self.clock.time()))
        if old is not None:
            # Shared, not copied: the old agent still records the transfer's tool result, which
            # the new agent's history needs after the tool call.
            conversation.messages = old.messages
            conversation.raw_log = old.raw_log
        self.note("assistant-handoff", assistant=name, source=source)
        session = await self._build_session(ai, conversation)
        session.hold_busy()
        self._next = (ai, conversation)
        return TransferResult("completed")

    def _make_watch(self, ai: AI, session: AgentSession) -> SilenceWatch:
        params = ai.params
        inactivity = check_ms("inactivity_timeout", params.inactivity_timeout)
        if params.inactivity_timeout is None:
            inactivity = DEFAULT_INACTIVITY_MS / 1000.0
        policy = SilencePolicy(
            attention=check_ms("attention_timeout", params.attention_timeout),
            attention_prompt=params.attention_timeout_prompt or DEFAULT_ATTENTION_PROMPT,
            inactivity=inactivity,
            goodbye=params.inactivity_goodbye or DEFAULT_INACTIVITY_GOODBYE,
        )

        async def on_inactivity() -> None:
            # Decided: from here on the call is closing — caller speech during the goodbye starts
            # no turn and no model request.
            if not self.controller.begin_closing(EndedReason.SILENCE_TIMED_OUT):
                return
            self.note("silence-timeout", seconds=policy.inactivity)
            self._close_with(policy.goodbye, EndedReason.SILENCE_TIMED_OUT, session)

        def on_attention(prompt: str) -> None:
            self.note("attention-timeout", seconds=policy.attention)
            session.submit_prompt("attention", prompt)

        return SilenceWatch(self.clock, policy, on_attention, on_inactivity)

    def _hard_stop_task(self, ai: AI, session: AgentSession) -> asyncio.Task[None] | None:
        if not ai.params.hard_stop_time:
            return None
        seconds = parse_hard_stop(ai.params.hard_stop_time)
        prompt = ai.params.hard_stop_prompt

        async def fire() -> None:
            await self.clock.sleep(max(0.0, seconds - (self.clock.monotonic() - self.started_at)))
            if not self.controller.live:
                return
            self.note("hard-stop", seconds=seconds)
            # Hard: whatever the turn in progress was waiting for (the model, a webhook, a hold,
            # wait_seconds, a warm transfer's briefing) is stopped now, not waited for.
            if not prompt:
                self.controller.begin_closing(EndedReason.EXCEEDED_MAX_DURATION)
            await session.preempt()
            if not prompt:
                await self._end_from_timer(EndedReason.EXCEEDED_MAX_DURATION, session)
                return
            await self.controller.take_back()
            session.final_turn(prompt)
            try:
                await within(self.clock, FINAL_WORDS_SECONDS, session.wait_done())
            except Deadline:
                self.note("hard-stop-forced", seconds=FINAL_WORDS_SECONDS)
            if self.controller.live:
                await self._end_from_timer(EndedReason.EXCEEDED_MAX_DURATION, session)

        return self._background(fire(), "hard-stop")

    def _close_with(self, goodbye: str, reason: EndedReason, session: AgentSession) -> None:
        """The goodbye plays in full in a task of its own (stopping the silence watch or the AI
        session must not cut it), then the call is hung up with `reason`."""

        async def close() -> None:
            session.speaker.protect()  # a goodbye is never cut
            try:
                await session.speaker.say(goodbye)
            except CallEnded:
                self.controller.remote_hangup()
                return
            await self._end_from_timer(reason, session)

        self._closer = self._background(close(), "closing")

    async def _end_from_timer(self, reason: EndedReason, session: AgentSession) -> None:
        """A timer ends the call: hang up, then stop whatever the agent still had in flight (a model
        stream, a function, a warm transfer briefing a supervisor), as when the caller hangs up."""
        await self.controller.hangup(reason)
        session.close()
        if self._main is not None and not self._main.done():
            self._main.cancel()

    # ------------------------------------------------------------ caller events

    def _maybe_barge_in(self, event: CallerSpeech) -> None:
        """The caller talks over the agent: enough words (barge_min_words) cut its speech."""
        session = self.session
        if session is None or session.finished or not session.speaker.interruptible:
            return
        params = session.ai.params
        policy = BargePolicy.from_params(params.enable_barge, params.barge_min_words)
        if not policy.interrupts(event.text, final=event.final):
            return
        if session.speaker.barge_in():
            self.note("barge-in", text=event.text, final=event.final)

    async def _read_events(self) -> None:
        async for event in self.setup.call.events():
            if isinstance(event, CallerSpeech):
                self._maybe_barge_in(event)
                if not event.final:
                    continue
                self.note("caller-said", text=event.text)
                if self._watch is not None:
                    self._watch.caller_activity()
                session = self.session
                if not self.controller.live:
                    continue  # closing (a goodbye is playing) or over: no new turn
                if session is not None and not session.finished:
                    session.submit_user(event.text)
                elif session is None:
                    self._early_speech.append(event.text)
            elif isinstance(event, SpeechStarted):
                if self._watch is not None:
                    self._watch.caller_activity()
            elif isinstance(event, Dtmf):
                self.note("dtmf", digits=event.digits)
                if self._watch is not None:
                    self._watch.caller_activity()
                if self.session is not None and not self.session.finished:
                    self.session.submit_user(f"DTMF: {event.digits}")
            elif isinstance(event, MediaTimeout):
                # The far end went quiet for good: the leg itself must be hung up (on a trunk the
                # line stays open otherwise), recorded as the caller's end with its cause.
                self.note("media-timeout")
                try:
                    await self.controller.hangup(EndedReason.CUSTOMER_ENDED_CALL, "media-timeout")
                except Exception as exc:  # the leg is what failed: the call is over regardless
                    log.warning("hang-up after a media timeout failed: %s", redact(str(exc)))
                    self.controller.remote_hangup("media-timeout")
                if self.session is not None:
                    self.session.speaker.cancel()
                if self._main is not None:
                    self._main.cancel()
                return
            elif isinstance(event, RemoteHangup):
                self.note("caller-hangup", cause=event.cause)
                self.controller.remote_hangup(event.cause)
                if self.session is not None:
                    self.session.speaker.cancel()
                if self._main is not None:
                    self._main.cancel()
                return
