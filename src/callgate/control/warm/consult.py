"""What the warm transfer needs of a consult agent (the agent itself lives in `runtime.consult`).

Control starts the consult agent but does not import it (DESIGN §2: the runtime wires the two); it
only sees this protocol and the verdict the agent returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from callgate.control.warm.summary import Summary
from callgate.swml.models import TransferConfig
from callgate.telephony.base import Call

# The consult agent's tools, exactly (DESIGN §4).
CONNECT = "connect_to_caller"
DECLINE = "decline_transfer"
REDIRECT = "redirect_transfer"


@dataclass(frozen=True)
class ConsultVerdict:
    """How the briefing ended: connect, decline (reason), redirect (destination), or the supervisor left."""

    kind: Literal["connect", "decline", "redirect", "hangup"]
    reason: str = ""
    destination: str = ""


class ConsultSession(Protocol):
    async def run(self) -> ConsultVerdict:
        """Brief the supervisor until a verdict; cancelling it makes the agent leave the leg."""
        ...


ConsultFactory = Callable[[Call, Summary, TransferConfig], ConsultSession]
"""Starts a consult agent on the supervisor's answered leg, briefed with the summary."""
