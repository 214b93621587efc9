"""After the call: run the post_prompt, write the call record, queue the report and deliver it.

The owner of a `CallRunner` calls `run_post_call(record_input(runner), services)` once `run()` has
returned. The record and its report are committed in one transaction before the first delivery
attempt, so a crash from then on loses nothing: the outbox worker of the next process (or
`callgate calls deliver`) sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from callgate.agent.history import Conversation
from callgate.llm.factory import model_settings
from callgate.llm.types import ModelError, StreamDone, TextDelta
from callgate.records.model import (
    CallRecord,
    PostPromptData,
    ResponseTiming,
    TimelineEntry,
    TransferEntry,
    UtteranceEntry,
    ended_by,
)
from callgate.records.outbox import Attempt, DeliveryWorker, RetryPolicy
from callgate.records.payload import build_payload, idempotency_key
from callgate.records.post_prompt import split_answer
from callgate.records.store import NewReport, Store
from callgate.redact import redact
from callgate.runtime.call_runner import CallRunner, ModelFactory
from callgate.swaig.context import CallContext
from callgate.swaig.urlguard import Guard
from callgate.swml.models import AI
from callgate.swml.pom import render_pom
from callgate.telephony.base import EndedReason
from callgate.telephony.clock import Clock
from callgate.template import expand
from callgate.timeline import CallOutcome

log = logging.getLogger(__name__)


@dataclass
class CallRecordInput:
    """What the engine knows when a call is over. Times are `clock.monotonic()` values."""

    context: CallContext
    outcome: CallOutcome
    ai: AI | None = None
    conversation: Conversation | None = None
    swaig_log: list[dict[str, Any]] = field(default_factory=list)
    global_data: dict[str, Any] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    times: list[ResponseTiming] = field(default_factory=list)
    started_at: float = 0.0
    answered_at: float | None = None
    ai_started_at: float | None = None
    ai_ended_at: float | None = None
    ended_at: float | None = None
    swml_results: dict[str, Any] = field(default_factory=dict)  # ai_result, answer_result, …
    guard_exempt: Callable[[str], bool] | None = None  # URLs the private-address guard lets by


def record_input(runner: CallRunner) -> CallRecordInput:
    session, functions = runner.session, runner.functions
    ai = runner.ai or runner.setup.document.find_ai()
    return CallRecordInput(
        context=runner.setup.context,
        outcome=runner.outcome,
        ai=ai,
        conversation=runner.conversation,
        swaig_log=[entry.to_dict() for entry in functions.swaig_log] if functions is not None else [],
        global_data=dict(functions.global_data)
        if functions is not None
        else dict(ai.global_data if ai else {}),
        input_tokens=session.input_tokens if session is not None else 0,
        output_tokens=session.output_tokens if session is not None else 0,
        times=[timing for model in runner.agent_models for timing in model.times],
        started_at=runner.started_at,
        answered_at=runner.answered_at,
        ai_started_at=runner.ai_started_at,
        ai_ended_at=runner.ai_ended_at,
        ended_at=runner.ended_at,
        swml_results=runner.swml_results(),
        guard_exempt=runner.setup.guard_exempt,
    )


@dataclass
class PostCallServices:
    store: Store
    http: httpx.AsyncClient
    clock: Clock
    model_for: ModelFactory
    env: Mapping[str, str] = field(default_factory=dict)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    # Deliver now and wait until the report is delivered or given up (False: leave it queued).
    deliver: bool = True


def build_record(data: CallRecordInput, clock: Clock) -> CallRecord:
    ctx, outcome = data.context, data.outcome
    now_mono, now_epoch = clock.monotonic(), clock.time()

    def micros(mono: float | None) -> int:
        return 0 if mono is None else round((now_epoch - (now_mono - mono)) * 1_000_000)

    conversation = data.conversation
    return CallRecord(
        call_id=ctx.call_id,
        ai_session_id=ctx.ai_session_id,
        conversation_id=ctx.conversation_id,
        app_name=ctx.app_name,
        project_id=ctx.project_id,
        space_id=ctx.space_id,
        caller_id_num=ctx.caller_id_num,
        caller_id_name=ctx.caller_id_name,
        to_number=ctx.to_number,
        call_start_date=micros(data.started_at),
        call_answer_date=micros(data.answered_at),
        ai_start_date=micros(data.ai_started_at),
        ai_end_date=micros(data.ai_ended_at),
        call_end_date=micros(data.ended_at if data.ended_at is not None else now_mono),
        ended_reason=outcome.ended_reason,
        ended_by=ended_by(outcome.ended_reason),
        hard_timeout=outcome.ended_reason == EndedReason.EXCEEDED_MAX_DURATION,
        call_log=conversation.call_log() if conversation is not None else [],
        raw_call_log=_raw_log(conversation, micros(data.started_at)) if conversation is not None else [],
        swaig_log=data.swaig_log,
        timeline=[
            TimelineEntry(t=e.t, kind=e.kind, leg=e.leg, data=_jsonable(e.data))
            for e in outcome.timeline.events
        ],
        utterances=[
            UtteranceEntry(text=u.text, start=u.start, end=u.end, leg=u.leg, cut=u.cut)
            for u in outcome.utterances
        ],
        transfers=[
            TransferEntry(to=t.to, mode=t.mode, result=t.result, reason=t.reason) for t in outcome.transfers
        ],
        total_input_tokens=data.input_tokens,
        total_output_tokens=data.output_tokens,
        times=data.times,
        swml_vars={**ctx.swml_vars, **data.swml_results},
        global_data=data.global_data,
        post_prompt_url=redact(data.ai.post_prompt_url) if data.ai and data.ai.post_prompt_url else None,
    )


def _raw_log(conversation: Conversation, origin_us: int) -> list[dict[str, Any]]:
    """The raw log with SignalWire's µs timestamps (the conversation keeps seconds since the start)."""
    out = []
    for entry in conversation.raw_log:
        item = dict(entry)
        if isinstance(item.get("timestamp"), int | float):
            item["timestamp"] = origin_us + round(float(item["timestamp"]) * 1_000_000)
        out.append(item)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def report_guard(ai: AI, data: CallRecordInput) -> Guard:
    """The private-address guard for the document's post_prompt_url (DESIGN §4)."""
    return Guard(
        allow_private=ai.params.swaig_allow_private_urls,
        document_host=data.context.document_host,
        exempt=data.guard_exempt,
    )


def post_prompt_text(ai: AI, data: CallRecordInput) -> str | None:
    post = ai.post_prompt
    if post is None:
        return None
    text = post.text if post.text is not None else render_pom(post.pom or [])
    if not text.strip():
        return None
    ctx = data.context
    scope = {
        "call_id": ctx.call_id,
        "caller_id_num": ctx.caller_id_num,
        "caller_id_name": ctx.caller_id_name,
        "global_data": data.global_data,
    }
    return expand(text, scope)


async def run_post_prompt(
    ai: AI, instructions: str, data: CallRecordInput, services: PostCallServices
) -> tuple[PostPromptData, int, int]:
    """Ask the model (role `post_prompt`, with post_prompt's own temperature/top_p) about the call.
    A failing model gives an empty answer: the report still goes out."""
    history = data.conversation.call_log() if data.conversation is not None else []
    # Only the spoken conversation: tool traffic would need the tool definitions to be valid.
    messages: list[dict[str, Any]] = [
        {"role": m["role"], "content": m["content"]}
        for m in history
        if m.get("role") in ("system", "user", "assistant")
        and isinstance(m.get("content"), str)
        and m["content"]
    ]
    messages.append({"role": "system", "content": instructions})
    settings = model_settings(ai.post_prompt, ai.params.ai_model, services.env)
    parts: list[str] = []
    input_tokens = output_tokens = 0
    try:
        model = services.model_for("post_prompt", ai)
    except ModelError as exc:  # no model can be set up: the record and its report still go out
        log.warning("post_prompt skipped for call %s: %s", data.context.call_id, exc)
        data.outcome.timeline.add(_t(data, services.clock), "post-prompt-failed", error=str(exc))
        return split_answer(""), 0, 0
    try:
        async for event in model.stream(messages, None, settings):
            if isinstance(event, TextDelta):
                parts.append(event.text)
            elif isinstance(event, StreamDone):
                input_tokens, output_tokens = event.input_tokens, event.output_tokens
    except ModelError as exc:
        log.warning("post_prompt failed for call %s: %s", data.context.call_id, exc)
        data.outcome.timeline.add(_t(data, services.clock), "post-prompt-failed", error=str(exc))
    finally:
        close = getattr(model, "aclose", None)
        if close is not None:
            await close()
    return split_answer("".join(parts)), input_tokens, output_tokens


def _t(data: CallRecordInput, clock: Clock) -> float:
    return clock.monotonic() - data.started_at


async def run_post_call(data: CallRecordInput, services: PostCallServices) -> CallRecord:
    """Run the post_prompt, commit the record (and its report), then deliver the report."""
    clock, ai = services.clock, data.ai
    record = build_record(data, clock)
    instructions = post_prompt_text(ai, data) if ai is not None else None
    if ai is not None and instructions is not None:
        answer, used_in, used_out = await run_post_prompt(ai, instructions, data, services)
        record.post_prompt, record.post_prompt_data = instructions, answer
        record.total_input_tokens += used_in
        record.total_output_tokens += used_out
        data.outcome.timeline.add(_t(data, clock), "post-prompt", raw=answer.raw)
    report = None
    if ai is not None and ai.post_prompt_url:
        key = idempotency_key(record)
        report = NewReport(
            idempotency_key=key,
            url=ai.post_prompt_url,
            payload=build_payload(record, key),
            auth_user=ai.post_prompt_auth_user,
            auth_password=ai.post_prompt_auth_password,
            max_attempts=services.policy.max_attempts,
            guard="exempt" if report_guard(ai, data).exempted(ai.post_prompt_url) else "strict",
        )
    services.store.save_call(record, report, now=clock.time())
    if ai is not None and ai.params.save_conversation and data.context.conversation_id:
        _remember(data, record, services)
    if report is not None and services.deliver:
        worker = DeliveryWorker(
            services.store, services.http, clock, services.policy, on_attempt=_noter(data, clock)
        )
        await worker.run_until_settled([record.call_id])
    return record


# What a conversation remembers is bounded: the newest text wins.
MEMORY_CHARS = 4000


def _remember(data: CallRecordInput, record: CallRecord, services: PostCallServices) -> None:
    """SignalWire's save_conversation: this call's summary joins what the conversation remembers —
    the post_prompt's answer if there is one, else the end of the transcript."""
    cid = data.context.conversation_id
    assert cid is not None
    answer = record.post_prompt_data
    summary = (answer.substituted or answer.raw) if answer is not None else ""
    if not summary.strip() and data.conversation is not None:
        summary = data.conversation.transcript_text()
    if not summary.strip():
        return
    earlier = services.store.recall_conversation(cid) or ""
    combined = f"{earlier}\n{summary.strip()}".strip()[-MEMORY_CHARS:]
    services.store.save_conversation(cid, combined, now=services.clock.time())
    data.outcome.timeline.add(_t(data, services.clock), "conversation-saved", conversation_id=cid)


def _noter(data: CallRecordInput, clock: Clock) -> Callable[[Attempt], None]:
    """Each delivery attempt shows in the call's timeline (a scenario's failure report shows it)."""

    def note(attempt: Attempt) -> None:
        report = attempt.report
        kind = "report-delivered" if attempt.ok else "report-failed" if attempt.gave_up else "report-retry"
        data.outcome.timeline.add(
            _t(data, clock),
            kind,
            url=redact(report.url),
            attempt=report.attempts,
            status=attempt.status,
            **({"error": attempt.error} if attempt.error else {}),
        )

    return note


# How long a live process waits (real seconds) for a finished call's report before leaving it
# queued for the next start-up or `callgate calls deliver`.
LIVE_REPORT_WAIT = 20.0


async def finish_live_call(
    runner: CallRunner, services: PostCallServices, *, wait: float = LIVE_REPORT_WAIT
) -> tuple[CallRecord, str | None]:
    """A live call's post-call work: the record is committed, then the report is given `wait`
    seconds. Returns the record and its report's status (None without a post_prompt_url)."""
    return await finish_live_record(record_input(runner), services, wait=wait)


async def finish_live_record(
    data: CallRecordInput, services: PostCallServices, *, wait: float = LIVE_REPORT_WAIT
) -> tuple[CallRecord, str | None]:
    """`finish_live_call` for what is known of a call (one that failed before its runner ran)."""
    queued = PostCallServices(
        services.store,
        services.http,
        services.clock,
        services.model_for,
        services.env,
        services.policy,
        False,
    )
    record = await run_post_call(data, queued)
    if not services.store.reports(call_id=record.call_id):
        return record, None
    worker = DeliveryWorker(services.store, services.http, services.clock, services.policy)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(worker.run_until_settled([record.call_id], max_sleep=0.5), wait)
    reports = services.store.reports(call_id=record.call_id)
    return record, reports[-1].status if reports else None


async def deliver_in_background(store: Store, http: httpx.AsyncClient, clock: Clock) -> None:
    """The outbox worker of a live process: sends what earlier runs left pending, then whatever
    becomes due, until cancelled."""
    await DeliveryWorker(store, http, clock).run_forever()
