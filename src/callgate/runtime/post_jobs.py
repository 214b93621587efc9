"""Runs post-call jobs (`post_jobs` in the store): ask the post_prompt model about the call, put
its answer in the record, queue the report, remember the conversation — the result written in
one transaction with the job's end, by the worker that holds the job's lease.

The job is written with the record at call end, so this work survives the process: the process
that ran the call does it at once; if that process dies (even mid-answer), the next `serve`,
`chat` or `callgate calls deliver` takes the job over (DESIGN §7) and does it again. A report
queued twice is impossible: the job ends in the transaction that queues it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from callgate.llm.factory import model_settings
from callgate.llm.types import ModelError, StreamDone, TextDelta
from callgate.records.async_store import AsyncStore, as_async
from callgate.records.model import CallRecord, PostPromptData
from callgate.records.outbox import RetryPolicy
from callgate.records.payload import build_payload, idempotency_key
from callgate.records.post_prompt import split_answer
from callgate.records.store import NewReport, PostJob, Store, StoreError
from callgate.runtime.call_runner import ModelFactory
from callgate.swml.models import AI
from callgate.telephony.clock import Clock

log = logging.getLogger(__name__)

# A job's lease: longer than the post_prompt model may take (its reply is bounded well below).
JOB_LEASE = 180.0
# After this many failed tries the job ends without the post_prompt: the report still goes out.
JOB_MAX_ATTEMPTS = 4
JOB_RETRY = 30.0  # seconds before a failed try is retried

Note = Callable[..., None]
"""`note(kind, **data)`: an event of the post-call work, for the call's live timeline."""


def _quiet(kind: str, **data: Any) -> None:
    return None


@dataclass
class PostJobs:
    store: Store | AsyncStore
    clock: Clock
    model_for: ModelFactory
    env: Mapping[str, str] = field(default_factory=dict)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    note: Note = _quiet

    async def run_due(self, call_ids: Sequence[str] | None = None) -> list[CallRecord]:
        """Every job (of these calls) nobody works on, one at a time; their updated records."""
        store = as_async(self.store)
        done: list[CallRecord] = []
        while store.store is not None:
            job = await store.run(store.store.claim_job, self.clock.time(), JOB_LEASE, call_ids=call_ids)
            if job is None:
                return done
            record = await self.run(store, job)
            if record is not None:
                done.append(record)
        return done

    async def run(self, store: AsyncStore, job: PostJob) -> CallRecord | None:
        """One claimed job; the record as written, or None (retried later, or taken over)."""
        assert store.store is not None
        sync = store.store
        try:
            record = await store.run(sync.get_call, job.call_id)
            if record is None:
                raise StoreError(f"the record of call {job.call_id} is missing")
            skip = job.attempts > JOB_MAX_ATTEMPTS
            if skip:
                log.warning(
                    "post-call job of call %s: giving up the post_prompt (%s)", job.call_id, job.error
                )
            report, memory = await self._result(record, job.spec, skip_prompt=skip)
            finished = await store.run(
                sync.finish_job, job.call_id, record, report, now=self.clock.time(), memory=memory
            )
        except Exception as exc:  # a store or model failure: the job waits for its next try
            log.warning("post-call job of call %s failed: %s: %s", job.call_id, type(exc).__name__, exc)
            retry_at = self.clock.time() + JOB_RETRY
            with contextlib.suppress(StoreError):  # else the lease runs out on its own
                await store.run(
                    sync.release_job, job.call_id, f"{type(exc).__name__}: {exc}", retry_at=retry_at
                )
            return None
        if not finished:
            return None
        if memory is not None:
            self.note("conversation-saved", conversation_id=memory[0])
        return record

    async def _result(
        self, record: CallRecord, spec: dict[str, Any], *, skip_prompt: bool
    ) -> tuple[NewReport | None, tuple[str, str] | None]:
        """Fill in the post_prompt's answer; the report and what the conversation remembers."""
        instructions = spec.get("instructions")
        if instructions and not skip_prompt:
            ai = AI.model_validate(spec.get("ai") or {})
            answer, used_in, used_out = await self._ask(ai, instructions, spec.get("messages") or [], record)
            record.post_prompt, record.post_prompt_data = instructions, answer
            record.total_input_tokens += used_in
            record.total_output_tokens += used_out
            self.note("post-prompt", raw=answer.raw)
        elif instructions:
            record.post_prompt, record.post_prompt_data = instructions, split_answer("")
        report = None
        target = spec.get("report")
        if target:
            key = idempotency_key(record)
            report = NewReport(
                idempotency_key=key,
                url=target["url"],
                payload=build_payload(record, key),
                auth_user=target.get("auth_user"),
                auth_password=target.get("auth_password"),
                max_attempts=int(target.get("max_attempts") or self.policy.max_attempts),
                guard=target.get("guard"),
            )
        memory = None
        if spec.get("conversation_id"):
            given = record.post_prompt_data
            summary = (given.substituted or given.raw) if given is not None else ""
            if not summary.strip():
                summary = spec.get("transcript") or ""
            if summary.strip():
                memory = (str(spec["conversation_id"]), summary.strip())
        return report, memory

    async def _ask(
        self, ai: AI, instructions: str, messages: list[dict[str, Any]], record: CallRecord
    ) -> tuple[PostPromptData, int, int]:
        """Ask the model (role `post_prompt`, with post_prompt's own temperature/top_p) about the
        call. A failing model gives an empty answer: the report still goes out."""
        asked = [*messages, {"role": "system", "content": instructions}]
        settings = model_settings(ai.post_prompt, ai.params.ai_model, self.env)
        parts: list[str] = []
        input_tokens = output_tokens = 0
        try:
            model = self.model_for("post_prompt", ai)
        except ModelError as exc:  # no model can be set up: the record and its report still go out
            log.warning("post_prompt skipped for call %s: %s", record.call_id, exc)
            self.note("post-prompt-failed", error=str(exc))
            return split_answer(""), 0, 0
        try:
            async for event in model.stream(asked, None, settings):
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                elif isinstance(event, StreamDone):
                    input_tokens, output_tokens = event.input_tokens, event.output_tokens
        except ModelError as exc:
            log.warning("post_prompt failed for call %s: %s", record.call_id, exc)
            self.note("post-prompt-failed", error=str(exc))
        finally:
            close = getattr(model, "aclose", None)
            if close is not None:
                await close()
        return split_answer("".join(parts)), input_tokens, output_tokens
