"""SignalWire data_map patterns: a plain regex, or `/regex/flags` (flags i, m, s, x)."""

from __future__ import annotations

import re
from functools import lru_cache

_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "g": 0, "u": 0}
_SLASHED = re.compile(r"^/(?P<body>.*)/(?P<flags>[a-z]*)$", re.DOTALL)


@lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a data_map pattern; raises `re.error` for a bad regex or an unknown flag."""
    match = _SLASHED.match(pattern)
    if match is None:
        return re.compile(pattern)
    flags = 0
    for letter in match.group("flags"):
        if letter not in _FLAGS:
            raise re.error(f"unknown regex flag {letter!r}")
        flags |= _FLAGS[letter]
    return re.compile(match.group("body"), flags)
