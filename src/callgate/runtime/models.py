"""The models of a live process (`serve`, `chat`, `demo`): `make_model` per request, shared where
sharing matters.

HTTP models already share the process's client per endpoint (`callgate.http_pool`), so a model per
call costs nothing. The embedded model is one llama.cpp object per weights file, which is not safe
for two generations at once: concurrent calls on it take turns. A process that also hears callers
runs the embedded model in a child process (`llm.embedded_server`): llama.cpp and the offline VAD
ship incompatible builds of the same native library. The endpoint order is DESIGN §4's,
`llm.factory.endpoint_url`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Mapping
from typing import Any

from callgate.http_pool import shared_pool
from callgate.llm.client import ChatModel, OpenAIChatModel
from callgate.llm.embedded import EmbeddedChatModel
from callgate.llm.factory import make_model
from callgate.llm.types import ModelError, ModelSettings, StreamEvent
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


# The embedded model answers slowly on a busy machine (loading, then a CPU-bound generation).
CHILD_FIRST_TOKEN_SECONDS = 60.0
CHILD_CHUNK_SECONDS = 30.0


class EmbeddedProcess:
    """The embedded model's own process (`python -m callgate.llm.embedded_server`), started on the
    first request that needs it; it exits when this process closes it or goes away."""

    def __init__(self, model_path: str | None, env: Mapping[str, str]) -> None:
        self.model_path = model_path
        self.env = dict(env)
        self._process: asyncio.subprocess.Process | None = None
        self._url: str | None = None
        self._lock = asyncio.Lock()

    async def url(self) -> str:
        async with self._lock:
            if self._url is not None and self._process is not None and self._process.returncode is None:
                return self._url
            args = [sys.executable, "-m", "callgate.llm.embedded_server"]
            if self.model_path:
                args += ["--model", self.model_path]
            self._process = process = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=self.env
            )
            assert process.stdout is not None
            try:
                line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().split()
            except TimeoutError:
                line = []
            if len(line) != 2 or line[0] != "listening":
                await self.aclose()
                raise ModelError("config", "the embedded model's process did not start")
            self._url = line[1]
            return self._url

    async def aclose(self) -> None:
        process, self._process, self._url = self._process, None, None
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()  # the child exits when its standard input closes
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


class ChildModel:
    """A `ChatModel` for the embedded model running in its own process."""

    def __init__(self, process: EmbeddedProcess, clock: Clock) -> None:
        self.process = process
        self.clock = clock

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, settings: ModelSettings
    ) -> AsyncIterator[StreamEvent]:
        url = await self.process.url()
        model = OpenAIChatModel(
            url,
            None,
            first_token_timeout=CHILD_FIRST_TOKEN_SECONDS,
            chunk_timeout=CHILD_CHUNK_SECONDS,
            clock=self.clock,
            http_client=shared_pool().model_client(url),
        )
        async for event in model.stream(messages, tools, settings):
            yield event


class ModelPool:
    """`model_for(role, ai)` for every call of a process (a `ModelFactory`); `aclose()` at exit
    stops the embedded model's process and closes the process's shared HTTP clients."""

    def __init__(self, env: Mapping[str, str], clock: Clock, *, embedded_in_child: bool = False) -> None:
        self.env = env
        self.clock = clock
        self.embedded_in_child = embedded_in_child
        self._embedded: dict[str | None, ChatModel] = {}
        self._children: list[EmbeddedProcess] = []

    def model_for(self, role: str, ai: AI) -> ChatModel:
        """The model for `ai` (any role): `params.llm_base_url`, `CALLGATE_LLM_URL`, OpenAI with
        `OPENAI_API_KEY`, else the embedded model. Raises ModelError("config") for a bad URL."""
        model = make_model(ai.params.llm_base_url, ai.params.ai_model, self.env, clock=self.clock)
        if not isinstance(model, EmbeddedChatModel):
            return model
        shared = self._embedded.get(model.model_path)
        if shared is None:
            if self.embedded_in_child:
                child = EmbeddedProcess(model.model_path, self.env)
                self._children.append(child)
                shared = ChildModel(child, self.clock)
            else:
                shared = OneAtATime(model)
            self._embedded[model.model_path] = shared
        return shared

    async def aclose(self) -> None:
        for child in self._children:
            await child.aclose()
        await shared_pool().aclose()
