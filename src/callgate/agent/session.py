"""One AI conversation on the caller's leg: the turn loop and the tool loop.

The session turns caller input into model requests, streams the answer into speech sentence by
sentence, runs the functions the model calls and carries out the actions they return. It never
touches call control: hang-ups and transfers are `Decision`s handed to `decide`, awaited to the end.

Rules that make hang-ups exact:
- a turn that ends the call (a hang-up of any kind, a stop action, a completed transfer) makes no
  further model request;
- every goodbye is queued before the hang-up decision and fully played first (`Speaker.drain`);
- the first hang-up wins; anything the model asks after it is ignored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from callgate.agent.decisions import (
    Decision,
    DynamicTarget,
    Hangup,
    HoldCaller,
    Transfer,
    TransferOrigin,
    TransferResult,
)
from callgate.agent.gather import GATHER_SUBMIT
from callgate.agent.history import Conversation, parse_arguments
from callgate.agent.reply import ReplySpeech
from callgate.agent.reply_deadline import DEFAULT_REPLY_SECONDS, DEFAULT_SPEECHLESS_SECONDS, ReplyDeadline
from callgate.agent.routes import Routes
from callgate.agent.speaker import Speaker
from callgate.agent.steps import NAVIGATION_TOOLS, NEXT_STEP, Move, MoveBy, StepMachine, choose_fillers
from callgate.agent.transfer_targets import choose_target, is_dynamic, tool_schema
from callgate.llm.client import ChatModel
from callgate.llm.phrases import match_end_call_phrase
from callgate.llm.types import (
    FALLBACK_NO_REPLY,
    ModelError,
    ModelSettings,
    StreamDone,
    TextDelta,
    ToolCall,
    ToolCallsReady,
    fallback_text,
)
from callgate.swaig import actions as act
from callgate.swaig.runtime import STARTUP_HOOKS, FunctionResult, FunctionRuntime
from callgate.swml.models import AI
from callgate.telephony.base import Call, CallEnded, EndedReason, Playback
from callgate.telephony.clock import Clock, Deadline, within
from callgate.timeline import CallOutcome, FunctionCallRecord, TransferRecord

log = logging.getLogger(__name__)

GOODBYE_BROKEN = "I'm sorry, I'm having technical difficulties. Please call back later. Goodbye."
# The hard stop's last words when the model gives none (failed, empty): never "say that again" at
# the moment the call ends.
GOODBYE_TIME_UP = "I'm sorry, we have run out of time for this call. Goodbye."
MAX_MODEL_FAILURES = 2
FILLER_AFTER_SECONDS = 1.0
MAX_WAIT_SECONDS = 600.0  # a native wait_seconds never holds the call longer than this
HOOK_TIMEOUT_SECONDS = 10.0  # a startup/hangup hook that takes longer is given up


@dataclass
class SessionOptions:
    max_tool_rounds: int = 8
    leg: str = "caller"


@dataclass
class RoundResult:
    """What one model request led to."""

    ended: bool = False  # the call is over or handed on: no more model requests
    stopped: bool = False  # the `ai` verb ended (stop action) but SWML may go on
    again: bool = False  # tool results were added: ask the model again


@dataclass
class _Pending:
    hangup: Hangup | None = None
    transfer: Transfer | None = None
    stop: bool = False
    transfer_call_id: str | None = None  # the tool call whose result is the transfer's outcome
    swml_failure: str | None = None  # a function's SWML connect failed: the rest of its actions are skipped
    wait_for_user: bool = False  # stay quiet until the caller speaks: no new model request
    user_inputs: list[str] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)  # context/step moves whose entry is still to apply

    @property
    def ending(self) -> bool:
        return bool(self.hangup or self.stop or self.transfer)


@dataclass(frozen=True)
class _Deferred:
    """A `post_process: true` result's actions, waiting for the model's reply to be heard."""

    function: str
    actions: list[act.Action]
    origin: TransferOrigin
    server_values: frozenset[str] | None


SwmlRunner = Callable[
    [dict[str, Any], bool, TransferOrigin, frozenset[str] | None], Awaitable[tuple[bool, str | None]]
]
"""Runs a SWML document from a function's action in the call.

Arguments: the document, whether the action is final (`transfer`), and where it came from
("server" for a webhook's answer, "document" for the document's own data_map expressions) — the
origin its connect / transfer verbs carry to the destination policy.
Returns (handed_on, transfer_failure): whether the call was handed on, and why a connect failed.
"""


class AgentSession:
    def __init__(
        self,
        *,
        ai: AI,
        call: Call,
        model: ChatModel,
        settings: ModelSettings,
        functions: FunctionRuntime,
        routes: Routes,
        conversation: Conversation,
        decide: Callable[[Decision], Awaitable[TransferResult | None]],
        is_live: Callable[[], bool],
        run_swml: SwmlRunner,
        clock: Clock,
        outcome: CallOutcome,
        started_at: float,
        options: SessionOptions | None = None,
        steps: StepMachine | None = None,
    ) -> None:
        self.ai = ai
        self.call = call
        self.model = model
        self.settings = settings
        self.functions = functions
        self.routes = routes
        self.conversation = conversation
        self._decide = decide
        self._is_live = is_live
        self._run_swml = run_swml
        self.clock = clock
        self.outcome = outcome
        self._started_at = started_at
        self.options = options or SessionOptions()
        self.steps = steps
        if steps is not None:
            conversation.step_prompt = steps.prompt_section()
        self.speaker = Speaker(call, ai.pronounce, on_spoken=self._on_spoken, on_refused=self._on_refused)
        self._inputs: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._idle = asyncio.Event()
        self._idle.set()
        self._finished = False
        self._phrase_hit: str | None = None
        self._model_failures = 0
        self._background: Playback | None = None
        self._filler_index = 0
        self.result = "success"
        self.on_idle: Callable[[], None] | None = None
        self.on_busy: Callable[[], None] | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self._deferred: list[_Deferred] = []
        self._late_inputs: list[str] = []  # user_input from deferred actions, after tool results
        self._turn: asyncio.Task[None] | None = None  # the turn in progress (preempt() cancels it)
        self._preempted = False
        self._final = False  # the hard stop's last turn: no tools, then the call ends
        self._turn_queued = 0  # the speaker's count of queued texts when the turn began
        self._done = asyncio.Event()

    # ------------------------------------------------------------ outside world

    def now(self) -> float:
        return self.clock.monotonic() - self._started_at

    def note(self, kind: str, **data: Any) -> None:
        self.outcome.timeline.add(self.now(), kind, leg=self.options.leg, **data)

    def submit_user(self, text: str) -> None:
        """A final transcript of the caller's speech."""
        self._submit("user", text)

    def submit_prompt(self, kind: str, text: str) -> None:
        """An instruction from a timer (`attention`, `hard_stop`) that makes the model speak."""
        self._submit(kind, text)

    def close(self) -> None:
        """Wake the loop so it notices the call has ended."""
        self._inputs.put_nowait(("end", ""))

    async def preempt(self) -> None:
        """Stop the turn in progress at once (the hard stop): its model stream, functions, hold,
        `wait_seconds` or transfer are cancelled and cleaned up (a warm transfer hangs up the
        supervisor), and what the agent was saying is cut. Returns once the turn has stopped.
        A turn that is already ending the call (hanging up) is left to finish."""
        if self._finished:
            return
        self.speaker.cancel()
        turn = self._turn
        if turn is None or turn.done():
            return
        self._preempted = True
        turn.cancel()
        await asyncio.wait({turn})

    def final_turn(self, prompt: str) -> None:
        """The hard stop: what the caller queued is dropped; the next turn answers `prompt` (no
        tools, the reply bounded like any other) and then ends the call."""
        while not self._inputs.empty():
            self._inputs.get_nowait()
        self._final = True
        self._submit("hard_stop", prompt)

    async def wait_done(self) -> None:
        """Returns once `run()` has returned."""
        await self._done.wait()

    def _submit(self, kind: str, text: str) -> None:
        self._idle.clear()
        if self.on_busy is not None:
            self.on_busy()
        self._inputs.put_nowait((kind, text))

    async def wait_idle(self) -> None:
        await self._idle.wait()

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    # ------------------------------------------------------------ main loop

    async def run(self, *, open_call: bool) -> str:
        """Run the conversation until it ends; returns SignalWire's ai_result (success | failed)."""
        self._step_events()  # a gather_info in the first step starts with the call
        try:
            if self.functions.hook(STARTUP_HOOKS) is not None:
                self._idle.clear()
                if await self._startup_hook():
                    return self.result
                if not open_call:
                    self._settle()
            await self._background_file()
            if open_call:
                self._idle.clear()
                if self.on_busy is not None:
                    self.on_busy()
                if self.ai.params.initial_sleep_ms:
                    # SignalWire's initial_sleep_ms: a pause before the agent opens the call.
                    await self.clock.sleep(self.ai.params.initial_sleep_ms / 1000.0)
                greeting = self.ai.params.static_greeting
                if greeting:
                    # SignalWire's static_greeting: spoken as is, no model request for the opening.
                    self.conversation.add_assistant(greeting, [], self.now())
                    self.speaker.begin_turn()
                    if self.ai.params.static_greeting_no_barge:
                        self.speaker.protect()
                    await self._run_turn(self.speaker.say(greeting))
                else:
                    await self._run_turn(self._respond())
                self._settle()
            while not self._finished and self._is_live():
                kind, text = await self._inputs.get()
                if kind == "end" or not self._is_live():
                    break
                if self._final and kind != "hard_stop":
                    continue  # the hard stop's turn comes next; nothing else is answered
                if kind == "user":
                    self.conversation.add_user(text, self.now())
                else:
                    self.conversation.add_system(text, self.now())
                await self._run_turn(self._respond(final=(kind == "hard_stop")))
                self._settle()
        except CallEnded:
            self.note("caller-gone")
        finally:
            self._finished = True
            self._idle.set()
            if self._background is not None:
                await self._background.stop()
            self._done.set()
        return self.result

    async def _run_turn(self, work: Awaitable[None]) -> None:
        """One turn as its own task, so the hard stop can stop it (`preempt`) without stopping the
        conversation; any other cancellation (the caller hung up) goes on through."""
        turn = asyncio.ensure_future(work)
        self._turn = turn
        try:
            await turn
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._preempted or (task is not None and task.cancelling()):
                raise
            self.note("turn-preempted")
            self.conversation.close_tool_calls("Cancelled: the call is ending.", self.now())
        finally:
            self._turn = None
            self._preempted = False

    async def _startup_hook(self) -> bool:
        """SignalWire's `startup_hook` (or `start_hook`): run once before the first model request.
        Its state actions apply; a say is spoken; True if its actions ended the call."""
        name = self.functions.hook(STARTUP_HOOKS)
        if name is None:
            return False
        self.note("hook", name=name, moment="startup")
        try:
            result = await within(self.clock, HOOK_TIMEOUT_SECONDS, self.functions.call(name, "{}"))
        except Deadline:
            self.note("hook-failed", name=name, error=f"no answer within {HOOK_TIMEOUT_SECONDS:g}s")
            return False
        self.note("hook-result", name=name, response=result.response, error=result.error)
        pending = _Pending()
        await self._apply_actions(result.actions, pending)
        concluded = await self._conclude(pending)
        return concluded is not None and (concluded.ended or concluded.stopped)

    async def _background_file(self) -> None:
        """SignalWire's params.background_file: audio under the whole conversation (looped unless
        background_file_loops is 1; any other count loops until the AI session ends)."""
        source = self.ai.params.background_file
        if not source or self._background is not None:
            return
        loops = self.ai.params.background_file_loops
        self.note("background-file", file=source, loops=loops)
        self._background = await self.call.play(source, loop=loops != 1, guard=self.functions.guard)

    def _settle(self) -> None:
        if self._inputs.empty() and not self._finished:
            self._idle.set()
            if self.on_idle is not None:
                self.on_idle()

    async def _respond(self, *, final: bool = False) -> None:
        """One turn: model rounds until the model stops calling tools or the turn ends the call."""
        self.speaker.begin_turn()
        self._turn_queued = self.speaker.queued
        if final:
            self.speaker.protect()  # the hard stop's last word is never cut
        since = len(self.conversation.messages)
        for _round in range(1 if final else self.options.max_tool_rounds):
            if not self._is_live():
                self._finished = True
                return
            outcome = await self._model_round()
            if outcome.ended or outcome.stopped:
                self._finished = True
                return
            if self.speaker.cut:
                break  # the caller talked over the agent: their words start the next turn
            if not outcome.again:
                move = self.steps.auto_advance() if self.steps is not None else None
                if move is None:
                    break
                # skip_user_turn: the next step starts without waiting for the caller.
                self._moved(move)
                await self._enter([move])
        else:
            if not final:
                # The model kept calling functions: the turn still ends with something said.
                self.note("tool-rounds-exhausted", limit=self.options.max_tool_rounds)
                await self._fallback(FALLBACK_NO_REPLY, "tool-rounds-exhausted")
        if self.speaker.cut:
            await self.speaker.drain()
            heard = " ".join(self.speaker.heard)
            self.note("barge-in-heard", heard=heard)
            self.conversation.keep_heard(since, heard, self.now())
        if final:
            if self.speaker.queued == self._turn_queued:
                await self._fallback(GOODBYE_TIME_UP, "hard-stop-unanswered")
            await self.speaker.drain()
            await self._end(Hangup(EndedReason.EXCEEDED_MAX_DURATION))

    # ------------------------------------------------------------ one model request

    def _reply_deadline(self) -> ReplyDeadline:
        params = self.ai.params
        speechless = params.reply_speechless_timeout
        whole = params.reply_timeout
        return ReplyDeadline(
            self.clock,
            speechless=DEFAULT_SPEECHLESS_SECONDS if speechless is None else speechless / 1000.0,
            whole=DEFAULT_REPLY_SECONDS if whole is None else whole / 1000.0,
        )

    async def _model_round(self) -> RoundResult:
        deadline = self._reply_deadline()
        reply = ReplySpeech(
            self.speaker,
            text_commands=self.ai.params.text_commands,
            note=self.note,
            on_sentence=deadline.spoke,
        )
        tool_calls: list[ToolCall] = []
        nameless = 0
        tools = [] if self._final else self._tools()
        queued = self.speaker.queued
        self.note("model-request", messages=len(self.conversation.request_messages()))
        try:
            try:
                async for event in self.model.stream(
                    self.conversation.request_messages(), tools or None, self.settings
                ):
                    if isinstance(event, TextDelta):
                        reply.feed(event.text)
                    elif isinstance(event, ToolCallsReady):
                        tool_calls = list(event.calls)
                        nameless = event.nameless
                    elif isinstance(event, StreamDone):
                        self.input_tokens += event.input_tokens
                        self.output_tokens += event.output_tokens
            except asyncio.CancelledError:
                if not deadline.expired():
                    raise
                # The model trickles or stalls between sentences: abandon it (no retry once tokens came).
                raise ModelError("timeout", deadline.fired or "reply deadline", bool(reply.text)) from None
            finally:
                deadline.close()
        except ModelError as error:
            if not reply.command:
                return await self._model_failed(error, reply)
            # The command arrived whole before the stream broke: it stands (the goodbye is said).
            self.note("model-error", error_kind=error.kind, message=str(error), after="command")
        reply.finish()
        self._model_failures = 0
        self.conversation.add_assistant(reply.text, tool_calls, self.now())
        if reply.text:
            self.note("assistant", text=reply.text)
        if nameless:
            self.note("tool-call-without-name", count=nameless)

        if self._deferred:
            deferred = await self._run_deferred(tool_calls)
            if deferred is not None:
                return deferred
        if reply.command:
            # A text command ends the turn, but functions called in the same reply still run first
            # (their results are recorded; no new model request is made).
            if tool_calls:
                outcome = await self._run_tools(tool_calls)
                if outcome.ended or outcome.stopped:
                    return outcome
            return await self._finish_command(reply)
        if tool_calls:
            return await self._run_tools(tool_calls)
        if self.speaker.queued == queued:
            # Nothing to say (an empty reply, only markup, a tool call without a name): recorded, and
            # a turn that has said nothing at all says the fallback instead of leaving silence.
            self.note("empty-reply", **({"raw": reply.text} if reply.text else {}))
            if self.speaker.queued == self._turn_queued and not self._final:
                await self._fallback(FALLBACK_NO_REPLY, "empty-reply")
        await self.speaker.drain()
        if self._phrase_hit is not None:
            await self._end(Hangup(EndedReason.ASSISTANT_SAID_END_CALL_PHRASE, self._phrase_hit))
            return RoundResult(ended=True)
        if self.steps is not None and self.steps.step.end and not self.steps.asking:
            # `end: true`: the conversation ends once the step's reply has been heard.
            self.note("step-end", context=self.steps.context_name, step=self.steps.step.name)
            return RoundResult(stopped=True)
        return RoundResult()

    async def _model_failed(self, error: ModelError, reply: ReplySpeech) -> RoundResult:
        """A broken stream: say what was said, then a short fallback — never silence."""
        self.note("model-error", error_kind=error.kind, message=str(error))
        reply.finish()
        if reply.text:
            self.conversation.add_assistant(reply.text, [], self.now())
        self._model_failures += 1
        if error.kind == "config" or (self._model_failures >= MAX_MODEL_FAILURES and not reply.text):
            self.result = "failed"
            self.speaker.protect()
            self.speaker.say_soon(GOODBYE_BROKEN)
            await self.speaker.drain()
            await self._end(Hangup(EndedReason.PIPELINE_ERROR, error.kind))
            return RoundResult(ended=True)
        if self._final:
            return RoundResult()  # the hard stop's turn closes with its own goodbye, not "say that again"
        self.speaker.say_soon(fallback_text(ModelError(error.kind, error.message, bool(reply.text))))
        await self.speaker.drain()
        if self._deferred:
            # The fallback stands in for the reply: a post_process hang-up still happens.
            deferred = await self._run_deferred([])
            if deferred is not None:
                return deferred
        return RoundResult()

    async def _fallback(self, text: str, why: str) -> None:
        """Say `text` in place of the answer the model did not give, and keep it in the history."""
        self.note("fallback", text=text, why=why)
        self.conversation.add_assistant(text, [], self.now())
        self.speaker.say_soon(text)
        await self.speaker.drain()

    async def _finish_command(self, reply: ReplySpeech) -> RoundResult:
        self.speaker.protect()
        await self.speaker.drain()
        if reply.hangup is not None:
            await self._end(reply.hangup)
            return RoundResult(ended=True)
        assert reply.transfer is not None
        result = await self._decide(reply.transfer)
        if result is not None and result.outcome in ("completed", "cancelled"):
            return RoundResult(ended=True)
        # A failed IMS transfer: control spoke err_msg; wait for the caller.
        return RoundResult()

    # ------------------------------------------------------------ tools

    async def _run_tools(self, calls: list[ToolCall]) -> RoundResult:
        # Functions run concurrently; their results and actions are applied in the model's order.
        tasks: dict[str, asyncio.Task[FunctionResult]] = {}
        for call in calls:
            if (
                self.routes.builtin_for(call.name) is None
                and not self._is_navigation(call.name)
                and self._allowed(call.name)
            ):
                tasks[call.id] = asyncio.create_task(self._call_function(call))
        try:
            return await self._apply_tool_calls(calls, tasks)
        finally:
            # The caller may leave mid-function: no webhook goes on working for a call that is over.
            for task in tasks.values():
                task.cancel()

    async def _call_function(self, call: ToolCall) -> FunctionResult:
        result = await self.functions.call(call.name, call.arguments)
        if result.pause > 0:
            # `@{sleep N}` in the function's templates: it finishes N seconds later on the call's clock.
            self.note("template-sleep", name=call.name, seconds=result.pause)
            await self.clock.sleep(result.pause)
        return result

    async def _apply_tool_calls(
        self, calls: list[ToolCall], tasks: dict[str, asyncio.Task[FunctionResult]]
    ) -> RoundResult:
        pending = _Pending(user_inputs=self._late_inputs)
        self._late_inputs = []
        if tasks:
            await self._fill_while_waiting(calls, tasks)
        for call in calls:
            if pending.hangup or pending.stop or (pending.transfer and call.id != pending.transfer_call_id):
                # Every tool call gets a result, even those the ending turn leaves unused.
                self.conversation.add_tool_result(call.id, "Ignored: the call is ending.", self.now())
                continue
            builtin = self.routes.builtin_for(call.name)
            arguments = parse_arguments(call.arguments)
            self.note("function-call", name=call.name, arguments=arguments)
            if self._is_navigation(call.name) and call.name == GATHER_SUBMIT:
                self._gather_submit(call, arguments, pending)
                continue
            if self._is_navigation(call.name):
                response = self._navigate(call.name, arguments, pending)
                self.outcome.functions.append(FunctionCallRecord(call.name, arguments, response))
                self.conversation.add_tool_result(call.id, response, self.now())
                continue
            if not self._allowed(call.name):
                assert self.steps is not None
                step = self.steps.step.name
                self.note("function-refused", name=call.name, step=step)
                response = f"The function {call.name} is not available in step {step!r}."
                self.conversation.add_tool_result(call.id, response, self.now())
                continue
            if builtin is not None:
                response = await self._builtin(builtin, call, arguments, pending)
                self.outcome.functions.append(FunctionCallRecord(call.name, arguments, response))
                if pending.transfer_call_id != call.id:
                    self.conversation.add_tool_result(call.id, response, self.now())
                continue
            result = await tasks[call.id]
            self.note("function-result", name=call.name, response=result.response, error=result.error)
            if result.builtin is not None:
                await self._builtin(result.builtin, call, result.args, pending)
            pending.swml_failure = None
            origin: TransferOrigin = "server" if result.from_server else "document"
            if result.post_process and result.actions:
                # SignalWire's order: the model answers the response first, then the actions run.
                self._deferred.append(_Deferred(call.name, result.actions, origin, result.server_values))
                if any(isinstance(action, act.Hangup | act.Stop | act.Swml) for action in result.actions):
                    self.speaker.protect()  # the reply before a post_process hang-up is never cut
                self.note("post-process-deferred", name=call.name, actions=len(result.actions))
            else:
                await self._apply_actions(result.actions, pending, origin, result.server_values)
            response = result.response
            if pending.swml_failure is not None:
                # The transfer the function asked for did not happen; the model must know why.
                response = f"{response} {pending.swml_failure}".strip()
            self.outcome.functions.append(FunctionCallRecord(call.name, arguments, response))
            self.conversation.add_tool_result(call.id, response, self.now())
        concluded = await self._conclude(pending)
        if concluded is not None:
            return concluded
        if pending.wait_for_user:
            return RoundResult()
        if self._phrase_hit is not None:
            await self._end(Hangup(EndedReason.ASSISTANT_SAID_END_CALL_PHRASE, self._phrase_hit))
            return RoundResult(ended=True)
        return RoundResult(again=True)

    async def _conclude(self, pending: _Pending) -> RoundResult | None:
        """Carry out what the applied actions decided (hang-up, transfer, stop); None: go on."""
        if pending.moves and not pending.ending:
            await self._enter(pending.moves)
        pending.moves = []
        for text in pending.user_inputs:
            self.conversation.add_user(text, self.now())
        await self.speaker.drain()
        if pending.hangup is not None:
            await self._end(pending.hangup)
            return RoundResult(ended=True)
        if pending.transfer is not None:
            transfer = await self._decide(pending.transfer)
            answer = transfer.for_model() if transfer is not None else "The call was transferred."
            if pending.transfer_call_id is not None:
                self.conversation.add_tool_result(pending.transfer_call_id, answer, self.now())
            else:
                self.conversation.add_system(f"Transfer result: {answer}", self.now())
            if transfer is None or transfer.outcome in ("completed", "cancelled"):
                return RoundResult(ended=True)
            return RoundResult(again=True)
        if pending.stop:
            return RoundResult(stopped=True)
        return None

    async def _run_deferred(self, tool_calls: list[ToolCall]) -> RoundResult | None:
        """The reply to a `post_process` result has been streamed: once it is heard, run the
        deferred actions. A hang-up among them ends the call after that reply (no new request)."""
        deferred, self._deferred = self._deferred, []
        await self.speaker.drain()
        pending = _Pending()
        for item in deferred:
            self.note("post-process-actions", name=item.function, actions=len(item.actions))
            await self._apply_actions(item.actions, pending, item.origin, item.server_values)
            if pending.ending:
                break
        if pending.ending:
            for call in tool_calls:
                self.conversation.add_tool_result(call.id, "Ignored: the call is ending.", self.now())
        elif tool_calls:
            # The reply's own tool calls need their results before any user message.
            self._late_inputs, pending.user_inputs = pending.user_inputs, []
        concluded = await self._conclude(pending)
        if concluded is not None:
            return concluded
        if pending.user_inputs and not tool_calls:
            return RoundResult(again=True)
        return None

    async def _fill_while_waiting(
        self, calls: list[ToolCall], tasks: dict[str, asyncio.Task[FunctionResult]]
    ) -> None:
        """Speak a filler if the functions take longer than a moment (languages/function fillers)."""
        try:
            # asyncio.wait, not gather: running out of time must not cancel the functions themselves.
            await within(self.clock, FILLER_AFTER_SECONDS, asyncio.wait(tasks.values()))
            return
        except Deadline:
            pass
        fillers = self._fillers_for(calls)
        if fillers:
            filler = fillers[self._filler_index % len(fillers)]
            self._filler_index += 1
            self.note("filler", text=filler)
            self.speaker.say_soon(filler)
        await asyncio.wait(tasks.values())

    def _fillers_for(self, calls: list[ToolCall]) -> list[str]:
        for call in calls:
            function = self.functions.get(call.name)
            if function is None or function.fillers is None or function.skip_fillers:
                continue
            if isinstance(function.fillers, list):
                return list(function.fillers)
            for values in function.fillers.values():
                if values:
                    return list(values)
        fillers: list[str] = []
        for language in self.ai.languages:
            fillers.extend(language.function_fillers or language.fillers)
        return fillers

    async def _builtin(self, kind: str, call: ToolCall, arguments: dict[str, Any], pending: _Pending) -> str:
        if kind == "hangup":
            if pending.hangup is None:
                pending.hangup = Hangup(EndedReason.ASSISTANT_ENDED_CALL, call.name)
            return "The call is ending."
        if pending.transfer is not None or pending.hangup is not None:
            return "Ignored: the call is already being ended or transferred."
        self.functions.remember_arguments(arguments)
        transfer = self._transfer_decision(call.name, arguments)
        if transfer is None:
            code = "destination-error: no destination was given"
            self.note("transfer-failed", function=call.name, code=code)
            self.outcome.transfers.append(TransferRecord(to="", mode="blind", result="failed", reason=code))
            return f"Transfer failed: {code}."
        pending.transfer_call_id = call.id
        pending.transfer = transfer
        return f"Transferring to {transfer.destination or 'the destination the server chooses'}."

    def _transfer_decision(self, name: str, arguments: dict[str, Any]) -> Transfer | None:
        """The Transfer a builtin transfer function asks for (see `transfer_targets`)."""
        function = self.functions.get(name)
        config = function.transfer if function is not None else None
        mode = config.mode if config else "blind"
        if function is not None and config is not None and is_dynamic(function):
            if not config.destination_url:
                return None
            return Transfer(
                destination="",
                source="builtin",
                mode=mode,
                msg=config.msg,
                err_msg=config.err_msg,
                caller_id=config.caller_id,
                origin="server",
                function=name,
                dynamic=DynamicTarget(
                    url=config.destination_url,
                    user=config.destination_auth_user,
                    password=config.destination_auth_password,
                    headers=dict(config.destination_headers),
                    timeout=float(config.destination_timeout or 10.0),
                    assistant_name=self.ai.params.app_name or "",
                    assistants=dict(config.assistants),
                    messages=tuple(self.conversation.request_messages()),
                    log=tuple(self.conversation.raw_log),
                    model_values=frozenset(self.functions.model_values),
                ),
            )
        target = choose_target(function, arguments)
        if target is None:
            return None
        return Transfer(
            destination=target.destination,
            source="builtin",
            mode=mode,
            msg=target.message or (config.msg if config else None),
            err_msg=config.err_msg if config else None,
            caller_id=target.caller_id or (config.caller_id if config else None),
            extension=target.extension,
            origin=target.origin,
            function=name,
        )

    def _tools(self) -> list[dict[str, Any]]:
        """The tools offered: builtin transfer functions with a fixed list get a destination enum;
        with contexts, the step's whitelist applies and the navigation tools join."""
        tools: list[dict[str, Any]] = []
        for tool in self.functions.tools():
            if not self._allowed(tool["function"]["name"]):
                continue
            function = self.functions.get(tool["function"]["name"])
            if function is not None and function.builtin == "transfer":
                tool = tool_schema(function, tool)
            tools.append(tool)
        navigation = self.steps.tools() if self.steps is not None else []
        navigation = [tool for tool in navigation if self._is_navigation(tool["function"]["name"])]
        if self.steps is not None and self.steps.asking:
            return tools + navigation  # a gather question: gather_submit and its own functions only
        return tools + self.routes.extra_tools + navigation

    def hold_busy(self) -> None:
        """Count as busy until `run()` has made its opening response (a hand-off's new agent), so a
        driver waiting for the agent does not talk over the greeting."""
        self._idle.clear()

    async def _apply_actions(
        self,
        actions: list[act.Action],
        pending: _Pending,
        origin: TransferOrigin = "document",
        server_values: frozenset[str] | None = None,
    ) -> None:
        for action in actions:
            if pending.hangup or pending.transfer:
                return
            if isinstance(action, act.Say):
                self.speaker.say_soon(action.text)
            elif isinstance(action, act.Stop):
                pending.stop = True
            elif isinstance(action, act.Hangup):
                pending.hangup = Hangup(EndedReason.ASSISTANT_ENDED_CALL, "hangup action")
            elif isinstance(action, act.Swml):
                await self.speaker.drain()
                handed_on, failure = await self._run_swml(
                    action.document, action.transfer, origin, server_values
                )
                if handed_on or not self._is_live():
                    self._finished = True
                    pending.stop = True
                    return
                if failure is not None:
                    pending.swml_failure = failure
                    return
            elif isinstance(action, act.ContextSwitch):
                self.conversation.context_switch(
                    action.system_prompt, action.user_prompt, action.consolidate, self.now()
                )
            elif isinstance(action, act.UserInput):
                pending.user_inputs.append(action.text)
            elif isinstance(action, act.PlaybackBg):
                if self._background is not None:
                    await self._background.stop()
                self._background = await self.call.play(
                    action.file, loop=not action.wait, guard=self.functions.guard
                )
                if action.wait:
                    await self._background.wait()
                    self._background = None
            elif isinstance(action, act.StopPlaybackBg):
                if self._background is not None:
                    await self._background.stop()
                    self._background = None
            elif isinstance(action, act.Hold):
                await self.speaker.drain()
                await self._decide(HoldCaller(action.timeout))
            elif isinstance(action, act.WaitSeconds):
                # The caller asked for time: the agent stays quiet, and this is not caller silence.
                await self.clock.sleep(min(max(action.seconds, 0.0), MAX_WAIT_SECONDS))
            elif isinstance(action, act.WaitForUser):
                pending.wait_for_user = action.enabled
            elif isinstance(action, act.ChangeContext | act.ChangeStep):
                if self.steps is None:
                    self.note(
                        "unsupported-action",
                        action=type(action).__name__,
                        name=action.name,
                        reason="the document has no prompt.contexts",
                    )
                    continue
                # Actions move regardless of valid_steps / valid_contexts.
                if isinstance(action, act.ChangeStep):
                    move = self.steps.change_step(action.name)
                else:
                    move = self.steps.change_context(action.name, MoveBy.ACTION)
                self._moved(move)
                if move.ok:
                    pending.moves.append(move)
            elif isinstance(action, act.UnknownAction):
                self.note("unknown-action", name=action.name)
            # toggle_functions, set/unset meta/global data: applied by the functions runtime.

    # ------------------------------------------------------------ contexts and steps

    def _is_navigation(self, name: str) -> bool:
        """SignalWire's own next_step / change_context (a document function of that name wins)."""
        return self.steps is not None and name in NAVIGATION_TOOLS and self.functions.get(name) is None

    def _allowed(self, name: str) -> bool:
        """The current step's `functions` whitelist covers the document's functions only."""
        return self.steps is None or self.functions.get(name) is None or self.steps.allows_function(name)

    def _navigate(self, name: str, arguments: dict[str, Any], pending: _Pending) -> str:
        assert self.steps is not None
        if name == NEXT_STEP:
            wanted = arguments.get("step")
            move = self.steps.next_step(None if wanted is None else str(wanted))
        else:
            move = self.steps.change_context(str(arguments.get("context", "")))
        self._moved(move)
        if move.ok:
            pending.moves.append(move)
            internal = self.ai.SWAIG.internal_fillers or {}
            filler = choose_fillers(internal.get(name), self._language())
            if filler:
                self.note("filler", text=filler[0], function=name)
                self.speaker.say_soon(filler[0])
        return move.for_model()

    def _gather_submit(self, call: ToolCall, arguments: dict[str, Any], pending: _Pending) -> None:
        """SignalWire's gather_submit: the answer goes to global_data, the next question replaces the
        instruction; the call leaves no trace in the history the model sees (the timeline, the report's
        swaig_log and raw_call_log keep it)."""
        assert self.steps is not None
        gathering = self.steps.gathering
        submission, move = self.steps.gather_submit(arguments)
        if submission is None or gathering is None:
            response = "Refused: no question is open."
            self.outcome.functions.append(FunctionCallRecord(call.name, arguments, response))
            self.conversation.add_tool_result(call.id, response, self.now())
            return
        if submission.rejected is None:
            gathering.store(self.functions.global_data, submission.key, submission.answer)
        self.outcome.functions.append(FunctionCallRecord(call.name, arguments, submission.for_model()))
        self.functions.log_native(call.name, call.arguments, submission.for_model())
        self.conversation.forget_tool_call(call.id)
        if move is not None:
            self._moved(move)
            pending.moves.append(move)
        else:
            self._step_events()
            self.conversation.step_prompt = self.steps.prompt_section()

    def _step_events(self) -> None:
        """What the step machine did on its own (gather_info questions and answers) goes on the
        timeline."""
        if self.steps is None:
            return
        events, self.steps.events = self.steps.events, []
        for kind, data in events:
            self.note(kind, **data)

    def _language(self) -> str:
        return self.ai.languages[0].code if self.ai.languages else "en-US"

    def _moved(self, move: Move) -> None:
        """The timeline records every move (and every refused one); the prompt follows the step."""
        assert self.steps is not None
        # Gather events of the step left are noted before the move, those of the step entered after.
        entered = [
            event
            for event in self.steps.events
            if event[0] in ("gather-start", "gather-question")
            and event[1].get("context") == move.context
            and event[1].get("step") == move.step
        ]
        self.steps.events = [event for event in self.steps.events if event not in entered]
        self._step_events()
        if not move.ok:
            self.note(
                "navigation-refused",
                by=str(move.by),
                context=move.context,
                step=move.step,
                reason=move.refused,
            )
            return
        if move.entry is not None:
            self.note(
                "context-change",
                by=str(move.by),
                context=move.context,
                step=move.step,
                from_context=move.from_context,
                from_step=move.from_step,
            )
        else:
            self.note(
                "step-change", by=str(move.by), context=move.context, step=move.step, from_step=move.from_step
            )
        self.steps.events = entered + self.steps.events
        self._step_events()
        self.conversation.step_prompt = self.steps.prompt_section()

    async def _enter(self, moves: list[Move]) -> None:
        """What entering a context does once the tool results are in: fillers, then the history."""
        for move in moves:
            for text in move.fillers:
                self.note("filler", text=text, context=move.context)
                self.speaker.say_soon(text)
            entry = move.entry
            if entry is not None:
                self.conversation.enter_context(
                    system_prompt=entry.system_prompt,
                    user_prompt=entry.user_prompt,
                    consolidate=entry.consolidate,
                    full_reset=entry.full_reset,
                    isolated=entry.isolated,
                    t=self.now(),
                )

    # ------------------------------------------------------------ ending

    def _on_refused(self, text: str, why: str) -> None:
        self.note("speech-refused", text=text, why=why)

    def _on_spoken(self, text: str) -> None:
        if self._phrase_hit is None and self.ai.params.end_call_phrases:
            self._phrase_hit = match_end_call_phrase(text, self.ai.params.end_call_phrases)

    async def _end(self, decision: Hangup) -> None:
        self.speaker.protect()
        self._finished = True
        await self._decide(decision)
