"""Per-reply latencies (`times`): a model wrapper that measures each streamed reply on the call's clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from callgate.llm.client import ChatModel
from callgate.llm.types import Clock, ModelSettings, StreamDone, StreamEvent, TextDelta
from callgate.records.model import ResponseTiming


class TimedModel:
    """Passes a model's stream through unchanged and appends one `ResponseTiming` per finished reply."""

    def __init__(self, model: ChatModel, clock: Clock) -> None:
        self.model = model
        self.clock = clock
        self.times: list[ResponseTiming] = []

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, settings: ModelSettings
    ) -> AsyncIterator[StreamEvent]:
        started = self.clock.monotonic()
        first: float | None = None
        text: list[str] = []
        async for event in self.model.stream(messages, tools, settings):
            if isinstance(event, TextDelta):
                if first is None:
                    first = self.clock.monotonic()
                text.append(event.text)
            elif isinstance(event, StreamDone):
                self.times.append(_timing("".join(text), started, first, self.clock.monotonic(), event))
            yield event

    async def aclose(self) -> None:
        close = getattr(self.model, "aclose", None)
        if close is not None:
            await close()


def _timing(text: str, started: float, first: float | None, done: float, event: StreamDone) -> ResponseTiming:
    answer = max(0.0, done - started)
    token_time = max(0.0, done - first) if first is not None else 0.0
    tokens = event.output_tokens
    return ResponseTiming(
        response=text,
        response_word_count=len(text.split()),
        answer_time=round(answer, 6),
        token_time=round(token_time, 6),
        tokens=tokens,
        avg_tps=round(tokens / answer, 3) if answer > 0 else 0.0,
        tps=round(tokens / token_time, 3) if token_time > 0 else 0.0,
        first_token_time=round(first - started, 6) if first is not None else None,
    )
