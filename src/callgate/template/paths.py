"""Walk a parsed path through nested mappings and lists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from callgate.template.functions import ENV_KEY
from callgate.template.parser import Segment, parse_path

# Distinct from None so a JSON null found at the end of a path is still "nothing".
_MISSING: Any = object()


def lookup(path: str, ctx: Mapping[str, Any]) -> Any:
    """Resolve a dotted/indexed path (`array[0].joke`) in `ctx`; None when anything is missing.

    Keys match exactly first, then without regard to case (as SignalWire does). An index must
    be within the list (negative ones never match); a digit segment (`array.0`) indexes a list.
    Never raises.
    """
    if not isinstance(path, str):
        return None
    return resolve(parse_path(path), ctx)


def resolve(path: tuple[Segment, ...], root: Any) -> Any:
    """Follow `path` from `root`; None when a step is missing or the path is empty."""
    if not path or (isinstance(path[0], str) and path[0].lower() == ENV_KEY):
        return None  # the template functions' environment is not data
    current = root
    try:
        for segment in path:
            kind = type(current)
            if kind is dict:
                found = current.get(segment, _MISSING)
                current = _mapping_step(current, segment) if found is _MISSING else found
            elif kind is list and type(segment) is int:
                current = current[segment] if 0 <= segment < len(current) else _MISSING
            else:
                current = _step(current, segment)
            if current is _MISSING:
                return None
    except Exception:
        # A caller's exotic Mapping or Sequence may raise anything; to a template it is missing.
        return None
    return current


def _step(current: Any, segment: Segment) -> Any:
    if isinstance(current, Mapping):
        return _mapping_step(current, segment)
    if isinstance(current, Sequence) and not isinstance(current, str | bytes | bytearray):
        index = segment if isinstance(segment, int) else _digits(segment)
        if index is not None and 0 <= index < len(current):
            return current[index]
    return _MISSING


def _mapping_step(current: Mapping[Any, Any], segment: Segment) -> Any:
    if type(current) is not dict and segment in current:
        return current[segment]
    if isinstance(segment, int):
        # `[0]` on an object means its key "0".
        return current.get(str(segment), _MISSING)
    folded = segment.lower()
    for key in current:
        if isinstance(key, str) and key.lower() == folded:
            return current[key]
    return _MISSING


def _digits(segment: str) -> int | None:
    if segment.isascii() and segment.isdigit() and len(segment) <= 18:
        return int(segment)
    return None
