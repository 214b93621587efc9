"""The model's raw function arguments in SignalWire's three forms: parsed, raw and substituted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from callgate.swml.limits import LimitExceeded, check_data_depth, load_json

_decoder = json.JSONDecoder()


@dataclass(frozen=True)
class Arguments:
    """`parsed` holds the JSON object found in `raw` (SignalWire sends it as a one-element list);
    `substituted` is the text around it, empty when the whole argument was JSON."""

    raw: str
    parsed: list[dict[str, Any]]
    substituted: str

    @property
    def args(self) -> dict[str, Any]:
        return self.parsed[0] if self.parsed else {}

    def as_request(self) -> dict[str, Any]:
        return {"parsed": self.parsed, "raw": self.raw, "substituted": self.substituted}


def parse_arguments(raw: str | None) -> Arguments:
    """Read the model's argument text; never raises. Non-JSON text has no parsed object."""
    text = raw or ""
    stripped = text.strip()
    if not stripped:
        return Arguments(raw=text, parsed=[], substituted="")
    try:
        value = load_json(stripped)
    except LimitExceeded:
        # Deeper than the call can copy, render and record: no arguments a function can use.
        return Arguments(raw=text, parsed=[], substituted=text)
    except ValueError:
        value = None
    else:
        if isinstance(value, dict):
            return Arguments(raw=text, parsed=[value], substituted="")
        return Arguments(raw=text, parsed=[], substituted=text)
    # JSON embedded in other text: take the first object that decodes.
    start = text.find("{")
    while start != -1:
        try:
            found, end = _decoder.raw_decode(text, start)
            check_data_depth(found)
        except LimitExceeded:
            break
        except (ValueError, RecursionError):
            start = text.find("{", start + 1)
            continue
        if isinstance(found, dict):
            return Arguments(raw=text, parsed=[found], substituted=(text[:start] + text[end:]).strip())
        start = text.find("{", end)
    return Arguments(raw=text, parsed=[], substituted=text)
