"""Typed decisions the agent hands to call control, and control's answers.

The agent never touches call control directly: it emits one of these and awaits the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from callgate.telephony.base import EndedReason

TransferSource = Literal["ims", "tool", "swml", "builtin"]
TransferOrigin = Literal["document", "server", "model"]

DEFAULT_ERR_MSG = "Sorry, I couldn't transfer your call."
"""Spoken when an IMS transfer fails or is refused and the command gave no err_msg."""


@dataclass(frozen=True)
class DynamicTarget:
    """A `builtin: transfer` with `destinations: []`: ask the customer's server where to go (Vapi's
    `transfer-destination-request`). Carries what the request needs from the conversation."""

    url: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    assistant_name: str = ""
    # Agent documents an `assistant` destination may name: {name: path or URL}.
    assistants: dict[str, str] = field(default_factory=dict)
    messages: tuple[dict[str, Any], ...] = ()  # OpenAI format, system prompt first
    log: tuple[dict[str, Any], ...] = ()  # the same with `timestamp` (seconds since the call began)
    # Every value the model gave as a function argument in the call: the server's answer passing
    # one back does not make it the server's choice (`callgate.swaig.provenance`).
    model_values: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Hangup:
    """End the call. Everything the agent meant to say has been said when this is emitted."""

    reason: EndedReason
    detail: str = ""


@dataclass(frozen=True)
class Transfer:
    """Hand the caller to `destination` (a number, a SIP URI, or `assistant:<name>`).

    `origin` says who chose the destination, for the destination policy: "document" (written in the
    document, or a document template), "server" (a customer server's answer) or "model" (the LLM's
    own output). `dynamic` set with an empty `destination`: control asks the destination server
    first. `function` names the tool a tool-triggered transfer came from.
    """

    destination: str
    source: TransferSource
    mode: Literal["blind", "warm"] = "blind"
    caller_id: str | None = None
    msg: str | None = None
    err_msg: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Where the destination came from, for the destination policy (issue: transfers).
    origin: TransferOrigin = "document"
    # With origin "server": the values the server's answer held that do not derive from the model's
    # arguments. The destination (and caller ID) count as the server's only if they are among them.
    server_values: frozenset[str] | None = None  # None: not tracked
    extension: str | None = None
    dynamic: DynamicTarget | None = None
    function: str | None = None


@dataclass(frozen=True)
class HoldCaller:
    """Put the caller on hold (no audio either way) for `seconds`, then take them off (SWAIG `hold`)."""

    seconds: float


Decision = Hangup | Transfer | HoldCaller


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
        text = f"Transfer {self.outcome}" + (f": {self.code}" if self.code else "")
        return text if text.endswith((".", "!", "?")) else text + "."
