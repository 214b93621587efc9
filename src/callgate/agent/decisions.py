"""Typed decisions the agent hands to call control, and control's answers.

The agent never touches call control directly: it emits one of these and awaits the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from callgate.telephony.base import EndedReason

TransferSource = Literal["ims", "tool", "swml", "builtin"]


@dataclass(frozen=True)
class Hangup:
    """End the call. Everything the agent meant to say has been said when this is emitted."""

    reason: EndedReason
    detail: str = ""


@dataclass(frozen=True)
class Transfer:
    """Hand the caller to `destination` (a number, a SIP URI)."""

    destination: str
    source: TransferSource
    mode: Literal["blind", "warm"] = "blind"
    caller_id: str | None = None
    msg: str | None = None
    err_msg: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Where the destination came from, for the destination policy (issue: transfers).
    origin: Literal["document", "server", "model"] = "document"


Decision = Hangup | Transfer


@dataclass(frozen=True)
class TransferResult:
    """`completed`, `failed` (with a code such as busy / no-answer), `refused`, or `cancelled`."""

    outcome: Literal["completed", "failed", "refused", "cancelled"]
    code: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "completed"

    def for_model(self) -> str:
        """The tool result the model receives."""
        if self.ok:
            return "The call was transferred."
        return f"Transfer {self.outcome}" + (f": {self.code}" if self.code else "") + "."
