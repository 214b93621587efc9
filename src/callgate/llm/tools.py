"""The `tools` list of a chat-completions request, built from a document's active SWAIG functions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from callgate.swml.models import Function


def function_tool(name: str, description: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """One OpenAI tool entry. A schema without a type is taken as an object's."""
    schema = dict(parameters) if parameters else {"type": "object", "properties": {}}
    schema.setdefault("type", "object")
    if schema.get("type") == "object":
        schema.setdefault("properties", {})
    return {"type": "function", "function": {"name": name, "description": description, "parameters": schema}}


def function_tools(functions: Iterable[Function]) -> list[dict[str, Any]]:
    """Tools for the functions that are active, in document order (a later duplicate name wins)."""
    tools: dict[str, dict[str, Any]] = {}
    for function in functions:
        if function.active:
            tools[function.function] = function_tool(
                function.function, function.description_text, function.parameters_schema
            )
    return list(tools.values())
