"""Webhooks Twilio sends about one operation of ours (a blind transfer's <Dial>), by a one-time token.

The token is part of the callback URLs we put in the TwiML; the endpoint hands each signed callback
to the waiting operation and answers the `<Dial action>` callback with the TwiML it chooses.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

ActionAnswer = Callable[[dict[str, str]], str]


@dataclass
class Pending:
    token: str
    # (kind, form): kind is "status" (the destination's progress) or "action" (the <Dial> ended).
    queue: asyncio.Queue[tuple[str, dict[str, str]]] = field(default_factory=asyncio.Queue)
    answer: ActionAnswer | None = None


class CallbackRegistry:
    def __init__(self) -> None:
        self._pending: dict[str, Pending] = {}

    def open(self, answer: ActionAnswer | None = None) -> Pending:
        pending = Pending(token=secrets.token_urlsafe(16), answer=answer)
        self._pending[pending.token] = pending
        return pending

    def close(self, token: str) -> None:
        self._pending.pop(token, None)

    def get(self, token: str) -> Pending | None:
        return self._pending.get(token)

    def deliver(self, token: str, kind: str, form: dict[str, str]) -> Pending | None:
        pending = self._pending.get(token)
        if pending is not None:
            pending.queue.put_nowait((kind, form))
        return pending
