"""The `swaig_log` of a call: one entry per function call, as SignalWire reports it in post_prompt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class SwaigLogEntry:
    """Shapes follow SignalWire's post_prompt payload. `url` never carries credentials and
    `post_data` never carries an auth password; `error` is callgate's note of what went wrong."""

    command_name: str
    command_arg: str
    epoch_time: int
    url: str | None
    post_data: dict[str, Any]
    post_response: Any
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "command_name": self.command_name,
            "command_arg": self.command_arg,
            "epoch_time": self.epoch_time,
            "post_data": self.post_data,
            "post_response": self.post_response,
        }
        if self.url is not None:
            out["url"] = self.url
        if self.error is not None:
            out["error"] = self.error
        return out
