"""Which values a customer's server really chose, and which it only passed back from the model.

The destination policy trusts a transfer destination (and caller ID) a customer's server returned.
A value the model supplied must not become the server's by passing through it: a lookup API that
echoes its query would otherwise dial whatever number the model was talked into. So every value
the model gave as a function argument during the call is remembered (`model_strings`), and a
server's answer counts only with the values that do not derive from one (`server_strings`).

A server value derives from a model value when, compared without punctuation, scheme and case
(and with every Unicode digit read as its ASCII one),

- the two are equal (`+1 900 555 0199` ~ `tel:+19005550199`), or
- the model value is phone-number-shaped (7 digits or more) and its digits occur in the server
  value's digits (`+1` + the model's `9005550199`; `sip:9005550199@pbx…`), or
- the model value names a host and the server value is a SIP URI at that host.

A short model value (an extension, a department name) does not taint a longer destination the
server built around it: the server chose where that goes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

_SCHEME = re.compile(r"^\s*(?:tel|sips?):", re.IGNORECASE)
_NOT_WORD = re.compile(r"[^0-9a-z@.]")
_HOST = re.compile(r"^(?=.*[a-z])[a-z0-9-]+(?:\.[a-z0-9-]+)+$")
PHONE_DIGITS = 7  # the fewest digits a phone number (E.164 or national) has


def scalar_strings(data: Any, limit: int = 10_000) -> frozenset[str]:
    """Every string and number in a JSON value (bounded)."""
    found: set[str] = set()
    stack = [data]
    while stack and len(found) < limit:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, str | int | float) and not isinstance(item, bool):
            text = str(item).strip()
            if text:
                found.add(text)
    return frozenset(found)


def model_strings(arguments: Any) -> frozenset[str]:
    """The values in a function call's arguments, as the model gave them."""
    return scalar_strings(arguments)


def _ascii_digits(text: str) -> str:
    """Every digit as its ASCII one (`１`, `١`, `𝟏` → `1`): a lookup that normalises the model's
    fullwidth or Arabic-Indic number (libphonenumber does) still passes the model's number back."""
    return "".join(
        str(unicodedata.digit(c)) if c.isdigit() else c for c in unicodedata.normalize("NFKC", text)
    )


def _squash(text: str) -> str:
    return _NOT_WORD.sub("", _ascii_digits(_SCHEME.sub("", text)).lower())


def _digits(text: str) -> str:
    return "".join(c for c in _ascii_digits(text) if c.isdigit())


def _sip_host(text: str) -> str | None:
    body = _SCHEME.sub("", text.strip()).lower()
    if "@" not in body:
        return None
    host = body.split("@", 1)[1]
    return re.split(r"[:;?>]", host, maxsplit=1)[0] or None


def derived_from(value: str, model_values: Iterable[str]) -> bool:
    """True when `value` equals or contains one of `model_values` (see the module docstring)."""
    squashed = _squash(value)
    digits = _digits(value)
    host = _sip_host(value)
    for given in model_values:
        mine = _squash(given)
        if not mine:
            continue
        if mine == squashed:
            return True
        wanted = _digits(given)
        if len(wanted) >= PHONE_DIGITS and wanted in digits:
            return True
        if host is not None and "@" not in mine and _HOST.match(mine) and mine == host:
            return True
    return False


def server_strings(answer: Any, model_values: Iterable[str]) -> frozenset[str]:
    """The values of a server's answer that the server chose: those not derived from the model's."""
    given = frozenset(model_values)
    return frozenset(v for v in scalar_strings(answer) if not derived_from(v, given))
