"""OpenAI `tools` entries for SWAIG functions."""

from __future__ import annotations

import copy
from typing import Any


def openai_parameters(schema: dict[str, Any] | None) -> dict[str, Any]:
    """A JSON Schema object the OpenAI API accepts, from a seed-style `argument` or `parameters`.

    The seed generation allows `type: string` arguments and per-property `required: true`; both
    are turned into a standard object schema. The input is never modified.
    """
    if not isinstance(schema, dict) or not schema:
        return {"type": "object", "properties": {}}
    out = copy.deepcopy(schema)
    if out.get("type") != "object":
        if not isinstance(out.get("properties"), dict):
            return {"type": "object", "properties": {}}
        out["type"] = "object"
    properties = out.get("properties")
    if not isinstance(properties, dict):
        properties = {}
        out["properties"] = properties
    required = (
        [r for r in out.get("required", []) if isinstance(r, str)]
        if isinstance(out.get("required"), list)
        else []
    )
    for name, prop in properties.items():
        # SDK-style per-property `required: true` becomes the standard top-level list.
        if isinstance(prop, dict) and isinstance(prop.get("required"), bool) and prop.pop("required"):
            required.append(str(name))
    if required:
        out["required"] = list(dict.fromkeys(required))
    else:
        out.pop("required", None)
    return out


def openai_tool(name: str, description: str, parameters: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": openai_parameters(parameters)},
    }
