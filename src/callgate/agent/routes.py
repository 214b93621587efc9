"""Which tool names end or transfer the call, however the document spells it.

- a SWAIG function with `builtin: hangup|transfer` (callgate, DESIGN §4) exposes the built-in under its
  own name (seed 003's `hangup_call` is written this way);
- `params.function_map: [{Function: hangup, MatchFunction: NAME}]` (IMS FunctionMap, seed 000): a tool
  call named NAME is honoured even if no such tool was declared;
- the implicit `hangup` tool: a document with no hang-up route at all whose prompt asks the agent to
  hang up (seed 004's voicemail bot: "say good bye and hang up the call") gets a built-in `hangup` tool,
  so the instruction can be followed. A prompt that never mentions hanging up gets none, so an ixHello
  style agent without a hang-up tool only ends by the silence timeout (seed 003).
  `params.implicit_hangup: false` switches this off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from callgate.swml.models import AI

Builtin = Literal["hangup", "transfer"]

_ASKS_TO_HANG_UP = re.compile(r"\bhang(?:\s|-)?up\b|\bend (?:the|this) call\b", re.IGNORECASE)

HANGUP_DESCRIPTION = (
    "End the call. Use it only once the conversation is complete; say goodbye in the same turn first."
)


@dataclass(frozen=True)
class Routes:
    builtins: dict[str, Builtin]
    extra_tools: list[dict[str, Any]]

    def builtin_for(self, name: str) -> Builtin | None:
        return self.builtins.get(name)


def _tool(name: str, description: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": {}},
        },
    }


def resolve_routes(ai: AI, prompt_text: str) -> Routes:
    builtins: dict[str, Builtin] = {}
    declared = {function.function for function in ai.SWAIG.functions}
    for function in ai.SWAIG.functions:
        if function.builtin is not None:
            builtins[function.function] = function.builtin
    extra: list[dict[str, Any]] = []
    for entry in ai.params.function_map:
        builtins[entry.MatchFunction] = entry.Function
        if entry.MatchFunction not in declared and entry.Function == "hangup":
            extra.append(_tool(entry.MatchFunction, HANGUP_DESCRIPTION))
    implicit = (ai.model_extra or {}).get("implicit_hangup")
    implicit_on = (ai.params.model_extra or {}).get("implicit_hangup", implicit)
    has_hangup = any(kind == "hangup" for kind in builtins.values())
    if (
        not has_hangup
        and implicit_on not in (False, "false", "False")
        and "hangup" not in declared
        and _ASKS_TO_HANG_UP.search(prompt_text)
    ):
        builtins["hangup"] = "hangup"
        extra.append(_tool("hangup", HANGUP_DESCRIPTION))
    return Routes(builtins=builtins, extra_tools=extra)
