"""Structured logs for a live server: one JSON object per line, each record of a call with its id.

The call id travels in a context variable: `CallHost` sets it in the task that runs the call, and
every task that call starts inherits it (asyncio copies the context), so a record logged anywhere
below — agent, control, channel, records — carries `call_id` without being passed it.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from callgate.redact import redact, redact_data

current_call_id: ContextVar[str | None] = ContextVar("callgate_call_id", default=None)

# LogRecord attributes of the logging module itself; anything else passed in `extra` is a field.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "call_id", "color_message"}  # uvicorn's terminal-coloured copy
)


@contextmanager
def call_scope(call_id: str) -> Iterator[None]:
    """Records logged inside (and in tasks started inside) carry `call_id`."""
    token = current_call_id.set(call_id)
    try:
        yield
    finally:
        current_call_id.reset(token)


class CallIdFilter(logging.Filter):
    """Stamps each record with the call it belongs to (None outside a call)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "call_id", None) is None:
            record.call_id = current_call_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", "call_id"?, …extra fields, "exc"?}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        call_id = getattr(record, "call_id", None)
        if call_id is not None:
            entry["call_id"] = call_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = redact_data(value)
        if record.exc_info:
            # A traceback quotes the values it failed on: it goes through the same redaction.
            entry["exc"] = redact(record.exc_text or self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_json_logging(level: str | int = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Route every logger (uvicorn's included) to one JSON handler on `stream` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(CallIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True
    # One line per outbound request is noise at INFO on a busy server.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    return handler
