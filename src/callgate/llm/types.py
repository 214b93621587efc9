"""Value types shared by every model client: settings, stream events, tool calls and errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

# Re-exported: model clients take the project's clock (real or virtual) for back-off and latency.
from callgate.swml.limits import LimitExceeded, load_json
from callgate.telephony.clock import Clock as Clock


@dataclass(frozen=True)
class ToolCall:
    """One function call requested by the model. `arguments` is the JSON text as the model sent it."""

    id: str
    name: str
    arguments: str

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; empty text is `{}`. Raises ValueError for anything but an object."""
        text = self.arguments.strip()
        if not text:
            return {}
        try:
            value = load_json(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"arguments of {self.name!r} are not valid JSON: {exc.msg}") from exc
        except LimitExceeded as exc:
            raise ValueError(f"arguments of {self.name!r} are {exc.message}") from exc
        if not isinstance(value, dict):
            raise ValueError(f"arguments of {self.name!r} are not a JSON object")
        return value


@dataclass(frozen=True)
class TextDelta:
    """A piece of the model's text, in order, as it arrived."""

    text: str


@dataclass(frozen=True)
class ToolCallsReady:
    """Every tool call of the reply, deduplicated; emitted once, after the last text."""

    calls: list[ToolCall]
    # Calls the model streamed without a function name: they cannot run and are left out of
    # `calls`, but the engine must know the reply was not simply empty.
    nameless: int = 0


@dataclass(frozen=True)
class StreamDone:
    """The reply is complete. Always the last event of a successful stream."""

    finish_reason: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    # Seconds from the request to the first event, on the client's clock (for records and benchmarks).
    first_token_seconds: float | None = None


StreamEvent = TextDelta | ToolCallsReady | StreamDone


@dataclass(frozen=True)
class ModelSettings:
    """Per-request sampling settings, from the document's prompt (`temperature`, `top_p`, …)."""

    model: str = "gpt-4o-mini"
    temperature: float | None = None
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    max_tokens: int | None = None
    # Anything else an endpoint accepts (e.g. `seed`), passed through as written.
    extra: dict[str, Any] = field(default_factory=dict)

    def request_options(self) -> dict[str, Any]:
        """The settings that are set, as chat-completions request fields."""
        options: dict[str, Any] = {
            key: value
            for key, value in (
                ("temperature", self.temperature),
                ("top_p", self.top_p),
                ("presence_penalty", self.presence_penalty),
                ("frequency_penalty", self.frequency_penalty),
                ("max_tokens", self.max_tokens),
            )
            if value is not None
        }
        options.update(self.extra)
        return options


ModelErrorKind = Literal["timeout", "http", "cut", "config"]


class ModelError(Exception):
    """The model could not produce (the rest of) a reply.

    `produced_text` tells the conversation engine whether some text was already yielded (and maybe
    spoken): then it must finish the turn with a short fallback instead of retrying.
    """

    def __init__(self, kind: ModelErrorKind, message: str, produced_text: bool = False) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind: ModelErrorKind = kind
        self.message = message
        self.produced_text = produced_text


# Short spoken fallbacks, so that a failing model never leaves the line silent.
FALLBACK_AFTER_CUT = "Sorry, I lost my train of thought there."
FALLBACK_NO_REPLY = "Sorry, I'm having trouble answering right now. Could you say that again?"


def fallback_text(error: ModelError) -> str:
    """What to say when `error` ended a turn: a short apology, different if something was said."""
    return FALLBACK_AFTER_CUT if error.produced_text else FALLBACK_NO_REPLY
