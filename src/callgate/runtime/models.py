"""The models of a live process (`serve`, `chat`): `make_model` per request, with what sharing needs.

HTTP models already share the process's client per endpoint (`callgate.http_pool`), so a model per
call costs nothing. The embedded model is one llama.cpp object per weights file, which is not safe
for two generations at once: concurrent calls on it take turns. The endpoint order is DESIGN §4's,
`llm.factory.endpoint_url`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from callgate.http_pool import shared_pool
from callgate.llm.client import ChatModel
from callgate.llm.embedded import EmbeddedChatModel
from callgate.llm.factory import make_model
from callgate.llm.types import ModelSettings, StreamEvent
from callgate.swml.models import AI
from callgate.telephony.clock import Clock


class OneAtATime:
    """A model that generates one reply at a time (llama.cpp's model object is shared)."""

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        self._lock = asyncio.Lock()

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, settings: ModelSettings
    ) -> AsyncIterator[StreamEvent]:
        async with self._lock:
            async for event in self.model.stream(messages, tools, settings):
                yield event


class ModelPool:
    """`model_for(role, ai)` for every call of a process (a `ModelFactory`); `aclose()` at exit
    closes the process's shared HTTP clients."""

    def __init__(self, env: Mapping[str, str], clock: Clock) -> None:
        self.env = env
        self.clock = clock
        self._embedded: dict[str | None, OneAtATime] = {}

    def model_for(self, role: str, ai: AI) -> ChatModel:
        """The model for `ai` (any role): `params.llm_base_url`, `CALLGATE_LLM_URL`, OpenAI with
        `OPENAI_API_KEY`, else the embedded model. Raises ModelError("config") for a bad URL."""
        model = make_model(ai.params.llm_base_url, ai.params.ai_model, self.env, clock=self.clock)
        if not isinstance(model, EmbeddedChatModel):
            return model
        shared = self._embedded.get(model.model_path)
        if shared is None:
            shared = self._embedded[model.model_path] = OneAtATime(model)
        return shared

    async def aclose(self) -> None:
        await shared_pool().aclose()
