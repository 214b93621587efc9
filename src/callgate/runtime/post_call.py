"""After the call: write the call record, run its post-call job (post_prompt, queue the report),
deliver the report.

The owner of a `CallRunner` calls `run_post_call(record_input(runner), services)` once `run()` has
returned. The record is committed as the call ends, together with its post-call job, before any
model request: a crash from then on loses nothing — the next process (or `callgate calls
deliver`) takes the job over (`runtime.post_jobs`) and delivers the report. When the store is
unusable the record goes to the spool instead (`records.spool`) and is imported later.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from callgate.agent.history import Conversation
from callgate.records.async_store import AsyncStore, as_async
from callgate.records.model import (
    CallRecord,
    ResponseTiming,
    TimelineEntry,
    TransferEntry,
    UtteranceEntry,
    ended_by,
)
from callgate.records.outbox import Attempt, DeliveryWorker, RetryPolicy
from callgate.records.store import PENDING, Store, StoreError
from callgate.redact import redact
from callgate.runtime.call_runner import CallRunner, ModelFactory
from callgate.runtime.post_jobs import PostJobs
from callgate.swaig.context import CallContext
from callgate.swaig.urlguard import Guard
from callgate.swml.models import AI
from callgate.swml.pom import render_pom
from callgate.telephony.base import EndedReason
from callgate.telephony.clock import Clock
from callgate.template import TemplateEnv, expand, with_env
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


SPOOLED = "spooled"  # a finished call's status when the store was unusable (`records.spool`)


@dataclass
class PostCallServices:
    store: Store | AsyncStore
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


def post_prompt_text(ai: AI, data: CallRecordInput, now: float | None = None) -> str | None:
    """The post_prompt's instructions, `${…}` and `@{…}` expanded; `now` (the call's clock, epoch
    seconds at the call's end) is what `@{strftime_tz …}` reads."""
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
    return expand(text, with_env(scope, TemplateEnv(now=now)) if now is not None else scope)


def post_job_spec(data: CallRecordInput, services: PostCallServices) -> dict[str, Any] | None:
    """What the call's post-call job needs, as JSON (`runtime.post_jobs`); None: nothing to do."""
    ai = data.ai
    if ai is None:
        return None
    instructions = post_prompt_text(ai, data, now=services.clock.time())
    report = None
    if ai.post_prompt_url:
        report = {
            "url": ai.post_prompt_url,
            "auth_user": ai.post_prompt_auth_user,
            "auth_password": ai.post_prompt_auth_password,
            "max_attempts": services.policy.max_attempts,
            "guard": "exempt" if report_guard(ai, data).exempted(ai.post_prompt_url) else "strict",
        }
    conversation_id = data.context.conversation_id if ai.params.save_conversation else None
    if instructions is None and report is None and not conversation_id:
        return None
    conversation = data.conversation
    return {
        "instructions": instructions,
        "messages": _spoken_history(conversation) if instructions else [],
        # What picks the post_prompt's model and settings again, in whichever process runs the job.
        "ai": {
            "post_prompt": ai.post_prompt.model_dump(mode="json", by_alias=True, exclude_none=True)
            if ai.post_prompt is not None
            else None,
            "params": {"ai_model": ai.params.ai_model, "llm_base_url": ai.params.llm_base_url},
        },
        "report": report,
        "conversation_id": conversation_id,
        "transcript": conversation.transcript_text() if conversation_id and conversation is not None else "",
    }


def _spoken_history(conversation: Conversation | None) -> list[dict[str, Any]]:
    """Only the spoken conversation: tool traffic would need the tool definitions to be valid."""
    history = conversation.call_log() if conversation is not None else []
    return [
        {"role": m["role"], "content": m["content"]}
        for m in history
        if m.get("role") in ("system", "user", "assistant")
        and isinstance(m.get("content"), str)
        and m["content"]
    ]


def _t(data: CallRecordInput, clock: Clock) -> float:
    return clock.monotonic() - data.started_at


async def run_post_call(data: CallRecordInput, services: PostCallServices) -> CallRecord:
    """Commit the record (with its post-call job), run the job (post_prompt, queue the report),
    then deliver the report."""
    record, _saved = await _post_call(data, services)
    return record


async def _post_call(data: CallRecordInput, services: PostCallServices) -> tuple[CallRecord, bool]:
    """`run_post_call`; also whether the store has the record (False: it went to the spool)."""
    clock = services.clock
    record = build_record(data, clock)
    job = post_job_spec(data, services)
    store = as_async(services.store)
    # The record is safe from here on: a crash during the post_prompt leaves the job to resume.
    saved = await store.save_call(record, now=clock.time(), job=job)
    if job is None or not saved:
        return record, saved
    done = await _jobs(data, services).run_due([record.call_id])
    record = done[0] if done else record
    if job.get("report") and services.deliver:
        await _worker(data, services).run_until_settled([record.call_id])
    return record, saved


def _jobs(data: CallRecordInput, services: PostCallServices) -> PostJobs:
    def note(kind: str, **fields: Any) -> None:
        data.outcome.timeline.add(_t(data, services.clock), kind, **fields)

    return PostJobs(services.store, services.clock, services.model_for, services.env, services.policy, note)


def _worker(data: CallRecordInput, services: PostCallServices) -> DeliveryWorker:
    return DeliveryWorker(
        services.store,
        services.http,
        services.clock,
        services.policy,
        on_attempt=_noter(data, services.clock),
        jobs=_jobs(data, services).run_due,
    )


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
    """`finish_live_call` for what is known of a call (one that failed before its runner ran).
    The status is "spooled" when the store was unusable and the record waits in the spool."""
    queued = dataclasses.replace(services, deliver=False)
    record, saved = await _post_call(data, queued)
    if not saved:
        return record, SPOOLED
    store = as_async(services.store)
    try:
        if not await store.run(_sync(store).reports, call_id=record.call_id):
            return record, None
        worker = _worker(data, services)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.run_until_settled([record.call_id], max_sleep=0.5), wait)
        reports = await store.run(_sync(store).reports, call_id=record.call_id)
    except StoreError as exc:  # the report stays queued for the next start or `calls deliver`
        log.warning("report of call %s not delivered now: %s", record.call_id, exc)
        return record, PENDING
    return record, reports[-1].status if reports else None


def _sync(store: AsyncStore) -> Store:
    if store.store is None:
        raise StoreError("no usable store")
    return store.store


async def deliver_in_background(
    store: Store | AsyncStore,
    http: httpx.AsyncClient,
    clock: Clock,
    model_for: ModelFactory | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """The outbox worker of a live process: imports spooled records, resumes post-call jobs others
    left (with `model_for`), sends what earlier runs left pending, then whatever becomes due,
    until cancelled."""
    # The jobs of calls whose process died are taken over here (DESIGN §7).
    jobs = PostJobs(store, clock, model_for, env or {}).run_due if model_for is not None else None
    await DeliveryWorker(store, http, clock, jobs=jobs).run_forever()
