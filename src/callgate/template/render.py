"""Turn looked-up values into text, and apply the `lc:` / `uc:` / `enc:` modifiers."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Set
from typing import Any
from urllib.parse import quote

from callgate.template.parser import Expression
from callgate.template.phone import format_phone


def to_text(value: Any) -> str:
    """Text for a value: strings as-is, None → "", booleans `true`/`false`, numbers as JSON,
    objects and lists as compact JSON. Never raises."""
    kind = value.__class__
    if kind is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    try:
        if kind is int:
            return str(value)
        if kind is float and math.isfinite(value):
            return repr(value)  # the same spelling as JSON's (1.5, 1e+16)
        if isinstance(value, str):
            return str.__str__(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            # JSON's spelling for floats (1.5, 1e+16, NaN), not the platform's C printf.
            return json.dumps(value)
        if isinstance(value, bytes | bytearray):
            return bytes(value).decode("utf-8", errors="replace")
        if isinstance(value, Mapping | list | tuple | Set):
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_jsonable)
        return str(value)
    except Exception:
        # Huge ints, circular containers, odd keys, a __str__ that raises: show what we can.
        return _last_resort(value)


def apply_modifiers(text: str, expression: Expression) -> str:
    """Phone formatting first, then the case change, then percent-encoding, whatever order they were
    written in."""
    text = apply_text_modifiers(text, expression)
    if expression.encode:
        # RFC 3986 unreserved characters stay; everything else (space → %20, `/`, `&`, `?`,
        # `#`) is escaped, so a model's argument cannot change a URL's path or query.
        text = quote(text, safe="", encoding="utf-8", errors="replace")
    return text


def apply_text_modifiers(text: str, expression: Expression) -> str:
    """`fmt_ph:` and `lc:` / `uc:` — every modifier but the encoding."""
    if expression.phone is not None:
        text = format_phone(text, expression.phone)
    if expression.case == "lc":
        text = text.lower()
    elif expression.case == "uc":
        text = text.upper()
    return text


def encode_path_part(text: str) -> str:
    """`enc:` inside a URL's path, as SignalWire encodes it: `/` stays, so `${enc:args.path}` can
    name a sub-path. A `.` or `..` segment is escaped (`%2E`), so a value still cannot climb out
    of the path it was put in."""
    segments = quote(text, safe="/", encoding="utf-8", errors="replace").split("/")
    return "/".join("%2E" * len(part) if part in (".", "..") else part for part in segments)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | Set):
        return list(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _last_resort(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return ""
