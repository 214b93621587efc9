"""Where a `builtin: transfer` function sends the call, and what the model is told about it.

A builtin transfer function's `transfer` block (DESIGN §4) picks the destination:

- `destinations: [...]` — a fixed list. Entries are strings (a number or SIP URI) or Vapi-style
  objects `{name | description, number | sipUri, callerId, extension, message}` (also
  `{type: assistant, assistantName}`). The model's argument (`destination`, or `target` / `to` /
  `number` / `name`) is matched case-insensitively against an entry's name, description, number
  or URI (numbers compared without punctuation). No argument: the first entry. An argument that
  matches nothing is passed on as the model's own choice (origin "model"), which the destination
  policy refuses unless the document names it.
- no list, but a `meta_data.table` mapping (SignalWire's transfer example): the argument is looked
  up there, case-insensitively; origin "document". meta_data never reaches the model.
- `destinations: []` with `destination_url`: dynamic, the server decides (Vapi, see
  `callgate.control.destinations`).
- nothing: the argument as given (origin "model").

Tool schema: a builtin transfer function with a fixed list and no parameters of its own is offered
to the model with a required `destination` argument whose enum is the entries' names.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from callgate.agent.decisions import TransferOrigin
from callgate.swml.models import Function

ARGUMENT_KEYS = ("destination", "target", "to", "number", "name")
_NOISE = re.compile(r"[\s().-]")


@dataclass(frozen=True)
class Target:
    destination: str
    origin: TransferOrigin
    caller_id: str | None = None
    extension: str | None = None
    message: str | None = None


def wanted_destination(arguments: dict[str, Any]) -> str | None:
    """The destination the model asked for, from the usual argument names."""
    for key in ARGUMENT_KEYS:
        value = arguments.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def _squash(text: str) -> str:
    return _NOISE.sub("", text).lower()


def entry_name(entry: Any) -> str | None:
    """The name the model picks an entry by."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict):
        for key in ("name", "assistantName", "number", "sipUri", "to", "description"):
            value = entry.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def _entry_target(entry: Any) -> Target | None:
    if isinstance(entry, str) and entry.strip():
        return Target(entry.strip(), "document")
    if not isinstance(entry, dict):
        return None
    if entry.get("type") == "assistant" and entry.get("assistantName"):
        return Target(f"assistant:{entry['assistantName']}", "document", message=_str(entry.get("message")))
    value = entry.get("number") or entry.get("sipUri") or entry.get("to")
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        return None
    return Target(
        str(value).strip(),
        "document",
        caller_id=_str(entry.get("callerId") or entry.get("caller_id")),
        extension=_str(entry.get("extension")),
        message=_str(entry.get("message")),
    )


def _str(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _labels(entry: Any) -> set[str]:
    if isinstance(entry, str):
        return {_squash(entry)}
    if not isinstance(entry, dict):
        return set()
    keys = ("name", "description", "number", "sipUri", "to", "assistantName")
    return {_squash(str(entry[k])) for k in keys if isinstance(entry.get(k), str | int) and entry.get(k)}


def is_dynamic(function: Function) -> bool:
    config = function.transfer
    return config is not None and config.destinations is not None and not config.destinations


def choose_target(function: Function | None, arguments: dict[str, Any]) -> Target | None:
    """The destination for one call of a builtin transfer function (None: nothing to go on)."""
    wanted = wanted_destination(arguments)
    config = function.transfer if function is not None else None
    entries = list(config.destinations or []) if config is not None else []
    if entries:
        if wanted is None:
            return _entry_target(entries[0])
        key = _squash(wanted)
        for entry in entries:
            if key in _labels(entry):
                return _entry_target(entry)
        return Target(wanted, "model")
    table = (function.meta_data or {}).get("table") if function is not None else None
    if isinstance(table, dict) and wanted is not None:
        lowered = {str(k).lower(): v for k, v in table.items()}
        found = lowered.get(wanted.lower())
        if isinstance(found, str | int) and not isinstance(found, bool) and str(found).strip():
            return Target(str(found).strip(), "document")
    if wanted is None:
        return None
    return Target(wanted, "model")


def tool_schema(function: Function, tool: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI tool for a builtin transfer function: a `destination` enum of the fixed list's
    names when the document declares no parameters of its own."""
    config = function.transfer
    if config is None or not config.destinations or function.parameters or function.argument:
        return tool
    names = [name for name in (entry_name(e) for e in config.destinations) if name]
    if not names:
        return tool
    described = []
    for entry in config.destinations:
        name = entry_name(entry)
        if isinstance(entry, dict) and entry.get("description") and entry.get("description") != name:
            described.append(f"{name}: {entry['description']}")
    text = "Where to transfer the call." + (" " + "; ".join(described) if described else "")
    out = copy.deepcopy(tool)
    out["function"]["parameters"] = {
        "type": "object",
        "properties": {
            "destination": {"type": "string", "enum": list(dict.fromkeys(names)), "description": text}
        },
        "required": ["destination"],
    }
    return out
