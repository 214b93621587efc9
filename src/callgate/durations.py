"""Durations as users write them: `35s`, `1.5s`, `2m`, `500ms`, `30m`, `1h30m`, or plain seconds.

Scenario files (`after: 3s`, `wait: 35s`) and SWML's `hard_stop_time` (`30m`, `1h30m`) share this
grammar. A bare number, or a string holding one, is seconds.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|sec|min|s|m|h)", re.IGNORECASE)
_WHOLE = re.compile(r"^(?:(?:\d+(?:\.\d+)?|\.\d+)\s*(?:ms|sec|min|s|m|h)\s*)+$", re.IGNORECASE)


def parse_duration(value: str | float | int) -> float:
    """Seconds in `value`. Raises ValueError for text that is not a duration, negatives and NaN."""
    if isinstance(value, bool):
        # bool is an int subclass; `after: true` is a mistake, not one second.
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return _checked(float(value), value)
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r}")
    text = value.strip()
    if not text:
        raise ValueError("empty duration")
    try:
        return _checked(float(text), value)
    except ValueError:
        pass
    if not _WHOLE.match(text):
        raise ValueError(f"not a duration: {value!r} (write e.g. 3s, 1.5s, 500ms, 2m, 1h30m)")
    total = sum(float(number) * _UNIT_SECONDS[unit.lower()] for number, unit in _PART.findall(text))
    return _checked(total, value)


def _checked(seconds: float, original: object) -> float:
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"not a finite duration: {original!r}")
    if seconds < 0:
        raise ValueError(f"duration must not be negative: {original!r}")
    return seconds


def _validate(value: object) -> float:
    if not isinstance(value, str | int | float):
        raise ValueError(f"not a duration: {value!r}")
    return parse_duration(value)


# A pydantic field type: `after: Duration = 0.0` accepts every form parse_duration does.
Duration = Annotated[float, BeforeValidator(_validate)]


_CLOCK_FORM = re.compile(r"\d+(?::\d{1,2}){1,2}")


def parse_hard_stop(value: str) -> float:
    """SignalWire's `hard_stop_time` in seconds: a duration ("30m", "1h30m", "90s") or "HH:MM:SS"/"MM:SS".

    Raises ValueError naming the param for anything else, zero included.
    """
    text = str(value).strip()
    seconds = 0.0
    try:
        if _CLOCK_FORM.fullmatch(text):
            for part in text.split(":"):
                seconds = seconds * 60 + int(part)
        else:
            seconds = parse_duration(text)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise ValueError(
            f"params.hard_stop_time: {value!r} is not a duration (e.g. '30m', '1h30m', '90s', 'HH:MM:SS')"
        )
    return seconds
