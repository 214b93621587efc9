"""The call summary the consult agent gives the supervisor (seed 001's TransferAgent).

The history is filtered as the seed does (`exclude_instructions`, `exclude_function_call`,
`exclude_empty_message`): system prompts, tool calls and tool results never reach the summary
model, so neither do secrets a function returned. A summary that is late, fails or comes back empty
is replaced by one built from the last turns: the supervisor is always told something.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from callgate.llm.client import ChatModel
from callgate.llm.types import ModelError, ModelSettings, TextDelta
from callgate.telephony.clock import Clock, Deadline, within

DEFAULT_SUMMARY_PROMPT = (
    "You are preparing a warm transfer. Summarise the conversation below for the person who will "
    "take over the call: who the caller is, what they want and what has been tried. Two or three "
    "sentences, plain text."
)
DEFAULT_SUMMARY_TIMEOUT = 10.0
FALLBACK_TURNS = 6
_WHO = {"user": "Customer", "assistant": "Assistant"}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Summary:
    text: str
    source: Literal["model", "fallback"]
    reason: str = ""  # why the fallback was used


def conversation_lines(messages: Sequence[dict[str, Any]]) -> list[str]:
    """`Customer: …` / `Assistant: …` lines: no instructions, function calls, or empty messages."""
    lines: list[str] = []
    for message in messages:
        who = _WHO.get(str(message.get("role")))
        if who is None:  # system instructions, tool results
            continue
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            continue  # empty, or an assistant message that only called functions
        lines.append(f"{who}: {' '.join(content.split())}")
    return lines


def fallback_summary(lines: Sequence[str], turns: int = FALLBACK_TURNS) -> str:
    """A summary without a model: the last `turns` lines of the conversation."""
    if not lines:
        return "The caller asked to be transferred; there is no conversation to summarise."
    recent = lines[-turns:]
    return "The caller asked to be transferred. The last turns were:\n" + "\n".join(recent)


async def _ask(model: ChatModel, settings: ModelSettings, prompt: str, transcript: str) -> str:
    messages = [
        {"role": "system", "content": prompt},
        {"role": "user", "content": f"The conversation:\n{transcript}"},
    ]
    pieces: list[str] = []
    async for event in model.stream(messages, None, settings):
        if isinstance(event, TextDelta):
            pieces.append(event.text)
    return "".join(pieces).strip()


async def summarize(
    model: ChatModel,
    settings: ModelSettings,
    messages: Sequence[dict[str, Any]],
    *,
    clock: Clock,
    prompt: str | None = None,
    timeout: float | None = None,
) -> Summary:
    """Ask the summary model (its own prompt, a deadline on `clock`); fall back to the last turns."""
    lines = conversation_lines(messages)
    seconds = DEFAULT_SUMMARY_TIMEOUT if timeout is None else timeout
    try:
        text = await within(
            clock, seconds, _ask(model, settings, prompt or DEFAULT_SUMMARY_PROMPT, "\n".join(lines))
        )
    except Deadline:
        return Summary(fallback_summary(lines), "fallback", f"timeout after {seconds:g}s")
    except ModelError as error:
        return Summary(fallback_summary(lines), "fallback", f"model error: {error.kind}")
    except Exception as error:  # a broken client must not strand the caller on hold
        log.warning("summary failed: %r", error)
        return Summary(fallback_summary(lines), "fallback", f"error: {type(error).__name__}")
    if not text:
        return Summary(fallback_summary(lines), "fallback", "empty reply")
    return Summary(text, "model")
