"""Split a post_prompt answer SignalWire's way: raw text, text without the JSON, the JSON parsed."""

from __future__ import annotations

import json
import re
from typing import Any

from callgate.records.model import PostPromptData

_DECODER = json.JSONDecoder()
_FENCE = re.compile(r"```(?:json)?", re.IGNORECASE)


def split_answer(raw: str) -> PostPromptData:
    """Every JSON object (or array of objects) in `raw` is parsed into `parsed`, in order, and
    removed from `substituted`. Braces that do not start valid JSON stay in the text."""
    parsed: list[Any] = []
    kept: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch in "{[":
            try:
                value, end = _DECODER.raw_decode(raw, i)
            except json.JSONDecodeError:
                value, end = None, -1
            if end > i and (isinstance(value, dict) or _is_object_list(value)):
                parsed.append(value)
                i = end
                continue
        kept.append(ch)
        i += 1
    substituted = _FENCE.sub("", "".join(kept)) if parsed else "".join(kept)
    return PostPromptData(raw=raw, substituted=" ".join(substituted.split()), parsed=parsed)


def _is_object_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)
