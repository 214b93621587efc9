"""How a data_map expression's `pattern` is matched, as SignalWire's platform does it.

A plain pattern is searched for anywhere in the expanded `string`, ignoring case; `/re/flags`
uses exactly the flags given (`i`, `m`, `s`, `x`). Patterns written in YAML from a JSON original
often carry doubled escapes (`\\\\w+` for `\\w+`, as in SignalWire's own YAML examples); a doubled
backslash before a character-class letter is read as the single escape the author meant.
"""

from __future__ import annotations

import re
from functools import lru_cache

from callgate.swml.patterns import compile_pattern

_DOUBLED_CLASS = re.compile(r"\\\\([wWdDsSbB])")
_SLASHED = re.compile(r"^/.*/[a-z]*$", re.DOTALL)


@lru_cache(maxsize=4096)
def compile_expression(pattern: str) -> re.Pattern[str]:
    """Compile a data_map pattern with the platform's semantics; raises `re.error` if invalid."""
    cleaned = _DOUBLED_CLASS.sub(r"\\\1", pattern)
    compiled = compile_pattern(cleaned)
    if _SLASHED.match(cleaned):
        return compiled
    return re.compile(cleaned, re.IGNORECASE)


def matches(pattern: str, text: str) -> bool:
    """Whether `pattern` matches somewhere in `text`. Raises `re.error` for a bad pattern."""
    return compile_expression(pattern).search(text) is not None
