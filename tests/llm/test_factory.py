"""Choosing the model: document endpoint, environment endpoint, embedded default; settings; tools."""

from __future__ import annotations

import pytest

from callgate.llm.client import OpenAIChatModel
from callgate.llm.embedded import EmbeddedChatModel
from callgate.llm.factory import make_model, model_settings
from callgate.llm.tools import function_tool, function_tools
from callgate.llm.types import ModelError
from callgate.swml.models import AI, Prompt

from .conftest import ServeFn, collect


async def test_document_endpoint_wins_over_environment() -> None:
    env = {"CALLGATE_LLM_URL": "http://127.0.0.1:9/env/v1", "OPENAI_API_KEY": "k"}
    model = make_model("http://127.0.0.1:9/doc/v1", None, env)
    assert isinstance(model, OpenAIChatModel)
    assert model.base_url == "http://127.0.0.1:9/doc/v1"
    await model.aclose()


async def test_environment_endpoint_is_the_default(serve: ServeFn) -> None:
    server = await serve({"agent": [{"text": "from env"}]})
    model = make_model(None, "some-model", {"CALLGATE_LLM_URL": server.base_url("agent")})
    assert isinstance(model, OpenAIChatModel)
    try:
        _, error = await collect(model)
    finally:
        await model.aclose()
    assert error is None
    assert server.requests[0].settings["model"] == "m"  # the model name travels in ModelSettings


def test_no_endpoint_means_the_embedded_model() -> None:
    model = make_model(None, None, {})
    assert isinstance(model, EmbeddedChatModel)
    assert model.model_path is None
    gguf = make_model("", "/models/tiny.gguf", {})
    assert isinstance(gguf, EmbeddedChatModel) and gguf.model_path == "/models/tiny.gguf"
    env_gguf = make_model(None, "gpt-4o", {"CALLGATE_LLM_GGUF": "/m/x.gguf"})
    assert isinstance(env_gguf, EmbeddedChatModel) and env_gguf.model_path == "/m/x.gguf"


async def test_an_openai_key_alone_means_openai_itself() -> None:
    # DESIGN §4: llm_base_url, else CALLGATE_LLM_URL, else OpenAI when OPENAI_API_KEY is set.
    model = make_model(None, None, {"OPENAI_API_KEY": "sk-test"})
    assert isinstance(model, OpenAIChatModel)
    assert model.base_url == "https://api.openai.com/v1"
    await model.aclose()
    env_url = make_model(
        None, None, {"OPENAI_API_KEY": "sk-test", "CALLGATE_LLM_URL": "http://127.0.0.1:9/v1"}
    )
    assert isinstance(env_url, OpenAIChatModel) and env_url.base_url == "http://127.0.0.1:9/v1"
    await env_url.aclose()
    assert isinstance(make_model(None, None, {"OPENAI_API_KEY": "  "}), EmbeddedChatModel)


def test_endpoint_must_be_http() -> None:
    with pytest.raises(ModelError) as caught:
        make_model("ftp://example.com/v1", None, {})
    assert caught.value.kind == "config"


def test_model_settings_from_a_prompt() -> None:
    ai = AI.model_validate(
        {
            "prompt": {
                "text": "hi",
                "temperature": "0.4",
                "top_p": 0.8,
                "frequency_penalty": 0.5,
                "max_tokens": 90,
            }
        }
    )
    settings = model_settings(ai.prompt, "gpt-4.1-nano", {})
    assert (settings.model, settings.temperature, settings.top_p) == ("gpt-4.1-nano", 0.4, 0.8)
    assert settings.frequency_penalty == 0.5 and settings.presence_penalty is None
    assert settings.max_tokens == 90
    assert settings.request_options() == {
        "temperature": 0.4,
        "top_p": 0.8,
        "frequency_penalty": 0.5,
        "max_tokens": 90,
    }
    assert model_settings(None, None, {"CALLGATE_LLM_MODEL": "local"}).model == "local"
    assert model_settings(Prompt(), None, {}).model == "gpt-4o-mini"


def test_tools_from_active_functions_of_both_generations() -> None:
    ai = AI.model_validate(
        {
            "SWAIG": {
                "functions": [
                    {
                        "function": "get_weather",
                        "purpose": "weather for a city",
                        "argument": {"type": "object", "properties": {"city": {"type": "string"}}},
                    },
                    {"function": "hidden", "description": "off", "active": "false"},
                    {"function": "hangup", "description": "End the call", "builtin": "hangup"},
                ]
            }
        }
    )
    tools = function_tools(ai.SWAIG.functions)
    assert [tool["function"]["name"] for tool in tools] == ["get_weather", "hangup"]
    assert tools[0]["function"]["description"] == "weather for a city"
    assert tools[0]["function"]["parameters"]["properties"] == {"city": {"type": "string"}}
    assert tools[1]["function"]["parameters"] == {"type": "object", "properties": {}}
    assert function_tool("f", "d", {"properties": {}})["function"]["parameters"]["type"] == "object"
