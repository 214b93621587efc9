"""SignalWire's `@{name arguments}` template functions: strftime_tz, fmt_ph, expr, echo, separate, sleep.

Pure and clock-driven: the time comes from `TemplateEnv.now` (the call's clock, epoch seconds), never
from the machine; `sleep` only records the pause it asks for (`TemplateEnv.slept`), and the caller
waits on the call's clock. Nested `${…}` are expanded before the function runs, so its arguments are
plain text here. A name that is not one of these functions returns None: the caller keeps the
`@{…}` as it was written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from callgate.template.phone import PHONE_FORMATS, format_phone

# The key under which a context mapping carries its TemplateEnv. A path segment can never be it
# (`resolve` refuses it), so no `${…}` reaches the environment.
ENV_KEY = "\x00template-env"

# A template may not hold a call longer than this (SignalWire documents no limit; a wait this long
# already reads as a broken agent to a caller).
MAX_SLEEP_SECONDS = 30.0
# `@{expr}` is for short arithmetic; longer input is refused before it is parsed.
MAX_EXPR_CHARS = 256
_MAX_EXPR_DEPTH = 32

# `@{name arguments}`: the name, then (after blanks) the arguments as written.
_CALL = re.compile(r"\s*(\S+)\s*(.*)", re.DOTALL)


@dataclass
class TemplateEnv:
    """What the functions need from outside: the call's clock time, and where `sleep` asks for time."""

    now: float | None = None
    slept: float = 0.0

    def pause(self) -> float:
        """The pause the expanded templates asked for (capped), and forget it."""
        seconds, self.slept = min(self.slept, MAX_SLEEP_SECONDS), 0.0
        return seconds


def with_env(ctx: Mapping[str, Any], env: TemplateEnv) -> dict[str, Any]:
    """`ctx` with `env` for the template functions (the call's clock, where `sleep` asks for time)."""
    return {**ctx, ENV_KEY: env}


def call_function(body: str, env: TemplateEnv | None) -> str | None:
    """Run `@{body}`; None when `body` does not name a function (the text then stays as written)."""
    found = _CALL.match(body)
    if found is None:
        return None
    name, argument = found.group(1), found.group(2)
    match name:
        case "echo":
            return argument
        case "separate":
            return " ".join(ch for ch in argument if not ch.isspace())
        case "fmt_ph":
            return _fmt_ph(argument)
        case "strftime_tz":
            return _strftime_tz(argument, env)
        case "expr":
            return _expr(argument)
        case "sleep":
            return _sleep(argument, env)
    return None


# ---------------------------------------------------------------- fmt_ph


def _fmt_ph(argument: str) -> str:
    """`@{fmt_ph <format>[:sep:<separator>] <number>}`; without a known format, the whole argument is
    the number, formatted `national`."""
    head, _, number = argument.partition(" ")
    style, sep_marker, separator = head.partition(":sep:")
    chosen = PHONE_FORMATS.get(style.lower())
    if chosen is None:
        return format_phone(argument.strip(), "national")
    formatted = format_phone(number.strip(), chosen)
    if sep_marker and formatted != number.strip():
        # The digit groups joined by the separator (`202-555-1234`), so speech pauses between them.
        groups = re.findall(r"\+?\d+", formatted)
        formatted = ("tel:" if chosen == "rfc3966" else "") + separator.join(groups)
    return formatted


# ---------------------------------------------------------------- strftime_tz


def _strftime_tz(argument: str, env: TemplateEnv | None) -> str:
    """`@{strftime_tz <zone> <format>}` at the call's clock time; "" without a clock, an unknown zone
    or a format the platform cannot write."""
    zone_name, _, fmt = argument.partition(" ")
    if env is None or env.now is None or not fmt:
        return ""
    zone = _zone(zone_name)
    if zone is None:
        return ""
    try:
        return datetime.fromtimestamp(env.now, tz=zone).strftime(fmt)
    except (ValueError, OverflowError, OSError):
        return ""


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo | None:
    """An IANA zone by its key, exactly or without regard to case (`america/chicago`, `utc`)."""
    key = _zone_keys().get(name.strip().lower())
    if key is None:
        return None
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@lru_cache(maxsize=1)
def _zone_keys() -> dict[str, str]:
    return {key.lower(): key for key in available_timezones()}


# ---------------------------------------------------------------- expr

_EXPR_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?|\.\d+)|(.))")


def _expr(argument: str) -> str:
    """`@{expr (100 - 25) / 5}`: + - * / and parentheses over literal numbers. "" for anything else
    (a name, a division by zero, unbalanced parentheses)."""
    if len(argument) > MAX_EXPR_CHARS:
        return ""
    try:
        tokens = _tokens(argument)
        value, pos = _sum(tokens, 0, 0)
    except (ValueError, ZeroDivisionError, OverflowError, IndexError):
        return ""
    if pos != len(tokens) or not math.isfinite(value):
        return ""
    return _number_text(value)


def _tokens(text: str) -> list[float | str]:
    out: list[float | str] = []
    for number, other in _EXPR_TOKEN.findall(text.strip()):
        if number:
            out.append(float(number))
        elif other and not other.isspace():
            if other not in "+-*/()":
                raise ValueError(other)
            out.append(other)
    return out


def _sum(tokens: list[float | str], pos: int, depth: int) -> tuple[float, int]:
    value, pos = _product(tokens, pos, depth)
    while pos < len(tokens) and tokens[pos] in ("+", "-"):
        op = tokens[pos]
        right, pos = _product(tokens, pos + 1, depth)
        value = value + right if op == "+" else value - right
    return value, pos


def _product(tokens: list[float | str], pos: int, depth: int) -> tuple[float, int]:
    value, pos = _unary(tokens, pos, depth)
    while pos < len(tokens) and tokens[pos] in ("*", "/"):
        op = tokens[pos]
        right, pos = _unary(tokens, pos + 1, depth)
        value = value * right if op == "*" else value / right
    return value, pos


def _unary(tokens: list[float | str], pos: int, depth: int) -> tuple[float, int]:
    if depth > _MAX_EXPR_DEPTH:
        raise ValueError("too deep")
    token = tokens[pos]
    if token == "-":
        value, pos = _unary(tokens, pos + 1, depth + 1)
        return -value, pos
    if token == "+":
        return _unary(tokens, pos + 1, depth + 1)
    if token == "(":
        value, pos = _sum(tokens, pos + 1, depth + 1)
        if pos >= len(tokens) or tokens[pos] != ")":
            raise ValueError("unbalanced")
        return value, pos + 1
    if isinstance(token, float):
        return token, pos + 1
    raise ValueError(f"unexpected {token!r}")


def _number_text(value: float) -> str:
    """15 → "15", 3.5 → "3.5", 1/3 → "0.333333333333333" (15 significant digits, no float noise)."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.15g}"


# ---------------------------------------------------------------- sleep


def _sleep(argument: str, env: TemplateEnv | None) -> str:
    """`@{sleep 2}`: expands to "" and asks the caller to wait that long on the call's clock."""
    try:
        seconds = float(argument.strip())
    except ValueError:
        return ""
    if env is not None and math.isfinite(seconds) and seconds > 0:
        env.slept = min(env.slept + seconds, MAX_SLEEP_SECONDS)
    return ""
