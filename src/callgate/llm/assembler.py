"""Assemble streamed tool-call deltas into whole calls, whatever style the server streams them in.

Two styles exist in the wild:
- standard (OpenAI): the first delta of a call carries `index`, `id` and `name`; later deltas carry
  only `index` and a fragment of `arguments`, to be concatenated;
- repeated (the example server of the IMS docs): every chunk carries the whole call again — same id,
  full arguments, often no `index` — which must yield one call, arguments not concatenated.

Some servers also resend the id with every fragment, or send the arguments so far (cumulative).
The merge rule below covers all of these: a fragment that starts with everything received so far
replaces it; anything else is appended.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from callgate.llm.types import ToolCall


@dataclass
class _Partial:
    id: str
    name: str
    arguments: str
    index: int | None


def _field(obj: Any, name: str) -> Any:
    """Read a field from an SDK object or a plain dict; a missing field is None."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _merge(existing: str, fragment: str) -> str:
    if existing and fragment.startswith(existing):
        return fragment  # repeated whole call, or cumulative arguments
    return existing + fragment


def normalize_arguments(arguments: str) -> str:
    """Arguments as JSON text: empty means `{}`; the IMS example's backslash-escaped `\\{\\}` is fixed.

    Anything else is returned as sent, so that the tool runner can report bad JSON to the model.
    """
    text = arguments.strip()
    if not text:
        return "{}"
    try:
        json.loads(text)
        return text
    except json.JSONDecodeError:
        pass
    unescaped = text.replace("\\{", "{").replace("\\}", "}")
    try:
        json.loads(unescaped)
    except json.JSONDecodeError:
        return arguments
    return unescaped


class ToolCallAssembler:
    """Feed `delta.tool_calls` lists as they arrive; `calls()` gives the finished, deduplicated calls."""

    def __init__(self) -> None:
        self._partials: list[_Partial] = []

    def __bool__(self) -> bool:
        return bool(self._partials)

    def feed(self, deltas: Iterable[Any] | None) -> None:
        """One chunk's `delta.tool_calls` (SDK objects or dicts)."""
        for delta in deltas or ():
            self._feed_one(delta)

    def _feed_one(self, delta: Any) -> None:
        call_id = _field(delta, "id") or None
        index = _field(delta, "index")
        function = _field(delta, "function")
        name = (_field(function, "name") or "") if function is not None else ""
        arguments = (_field(function, "arguments") or "") if function is not None else ""
        if not isinstance(arguments, str):
            # Some servers send arguments as an object rather than JSON text.
            arguments = json.dumps(arguments)

        partial = self._find(call_id, index)
        if partial is None:
            if not (call_id or name or arguments):
                return  # an empty delta (e.g. only `type`) starts nothing
            self._partials.append(
                _Partial(
                    id=call_id or f"call_{uuid.uuid4().hex[:24]}", name=name, arguments=arguments, index=index
                )
            )
            return
        if name and name != partial.name:
            partial.name = _merge(partial.name, name)
        partial.arguments = _merge(partial.arguments, arguments)
        if partial.index is None:
            partial.index = index

    def _find(self, call_id: str | None, index: Any) -> _Partial | None:
        if call_id is not None:
            # A new id is a new call, even if a server reuses index 0 for parallel calls.
            return next((p for p in self._partials if p.id == call_id), None)
        if index is not None:
            return next((p for p in reversed(self._partials) if p.index == index), None)
        # Neither id nor index: a continuation of the latest call.
        return self._partials[-1] if self._partials else None

    @property
    def nameless(self) -> int:
        """How many calls came without a name (dropped by `calls()`)."""
        return sum(1 for p in self._partials if not p.name)

    def calls(self) -> list[ToolCall]:
        """The calls so far, in order of first appearance; calls without a name are dropped."""
        return [
            ToolCall(id=p.id, name=p.name, arguments=normalize_arguments(p.arguments))
            for p in self._partials
            if p.name
        ]
