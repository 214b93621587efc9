"""SignalWire's native functions: check_time, wait_seconds, wait_for_user.

They run inside callgate (no webhook). Waiting is not done here: `wait_seconds` and
`wait_for_user` return an action the conversation engine carries out on its own clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from callgate.swaig.actions import Action, WaitForUser, WaitSeconds

# Longest wait the model may ask for; a caller asking for more is asked again later.
MAX_WAIT_SECONDS = 600.0


@dataclass
class NativeOutcome:
    response: str
    actions: list[Action] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class NativeFunction:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[dict[str, Any], float, str | None], NativeOutcome]


@lru_cache(maxsize=1)
def _zone_index() -> tuple[dict[str, str], dict[str, str]]:
    """Lower-cased zone keys (`america/new_york`) and city names (`new york`) → zone key."""
    keys: dict[str, str] = {}
    cities: dict[str, str] = {}
    for key in sorted(available_timezones()):
        keys[key.lower()] = key
        if "/" in key:
            cities.setdefault(key.rsplit("/", 1)[-1].replace("_", " ").lower(), key)
    return keys, cities


def resolve_zone(text: str) -> ZoneInfo | None:
    """A time zone from an IANA key (`America/Chicago`, `UTC`) or a city (`Chicago`, `new york`)."""
    cleaned = text.strip().lower()
    if not cleaned:
        return None
    keys, cities = _zone_index()
    found = (keys.get(cleaned), keys.get(cleaned.replace(" ", "_")), cities.get(cleaned.replace("_", " ")))
    for key in found:
        if key is not None:
            try:
                return ZoneInfo(key)
            except (ZoneInfoNotFoundError, ValueError):
                return None
    return None


def _check_time(args: dict[str, Any], now: float, local_tz: str | None) -> NativeOutcome:
    asked = args.get("timezone") or args.get("location") or args.get("tz")
    name = str(asked) if asked not in (None, "") else (local_tz or "UTC")
    zone = resolve_zone(name)
    if zone is None:
        return NativeOutcome(
            response=(
                f"I could not find the time zone for {name!r}. Ask for a city or an IANA time zone "
                "such as America/New_York."
            ),
            error=f"unknown time zone {name!r}",
        )
    moment = dt.datetime.fromtimestamp(now, tz=zone)
    clock = moment.strftime("%I:%M %p").lstrip("0")
    day = f"{moment.strftime('%A, %B')} {moment.day}, {moment.year}"
    return NativeOutcome(response=f"It is {clock} on {day} in {zone.key} ({moment.tzname()}).")


def _wait_seconds(args: dict[str, Any], now: float, local_tz: str | None) -> NativeOutcome:
    raw = args.get("seconds", args.get("duration"))
    try:
        seconds = float(str(raw))
    except (TypeError, ValueError):
        return NativeOutcome(
            response="wait_seconds needs a number of seconds.", error=f"bad seconds value {raw!r}"
        )
    seconds = max(0.0, min(seconds, MAX_WAIT_SECONDS))
    shown = f"{seconds:g}"
    return NativeOutcome(response=f"Waited {shown} seconds.", actions=[WaitSeconds(seconds)])


def _wait_for_user(args: dict[str, Any], now: float, local_tz: str | None) -> NativeOutcome:
    return NativeOutcome(response="Waiting for the user to speak.", actions=[WaitForUser()])


NATIVE_FUNCTIONS: dict[str, NativeFunction] = {
    "check_time": NativeFunction(
        name="check_time",
        description="Returns the current time in a location or time zone the caller names.",
        parameters={
            "type": "object",
            "properties": {
                "timezone": {
                    "type": "string",
                    "description": "A city (e.g. Chicago) or IANA time zone (e.g. America/Chicago).",
                }
            },
        },
        run=_check_time,
    ),
    "wait_seconds": NativeFunction(
        name="wait_seconds",
        description="Waits the given number of seconds, when the caller asks you to wait a while.",
        parameters={
            "type": "object",
            "properties": {"seconds": {"type": "integer", "description": "How many seconds to wait."}},
            "required": ["seconds"],
        },
        run=_wait_seconds,
    ),
    "wait_for_user": NativeFunction(
        name="wait_for_user",
        description=(
            "Use this function only when the user asks you to wait, hold on, or the equivalent. "
            "This will cause the AI to wait until the user speaks to it again."
        ),
        parameters={"type": "object", "properties": {}},
        run=_wait_for_user,
    ),
}
