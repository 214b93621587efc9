"""Silence and duration timers (SignalWire attention/inactivity/hard-stop params, seed 003).

Silence is counted only while the agent is waiting for the caller: the agent's own speech, tool
execution and hold are not caller silence. Caller speech resets the count. Attention re-prompts do
not reset it, so `inactivity_timeout` still ends a call whose caller never answers the re-prompts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from callgate.telephony.clock import Clock, Deadline, within

DEFAULT_INACTIVITY_GOODBYE = "I haven't heard from you, disconnecting the call now. Thank you for your time."
DEFAULT_INACTIVITY_MS = 600_000  # SignalWire's default: ten minutes
DEFAULT_ATTENTION_PROMPT = (
    "The user has not responded, try to get their attention. Stay in the same language."
)


class TimerConfigError(ValueError):
    pass


def check_ms(name: str, value: int | None) -> float | None:
    """A SignalWire millisecond param in seconds; 0 disables; negative values are an error."""
    if value is None or value == 0:
        return None
    if value < 0:
        raise TimerConfigError(
            f"params.{name}: {value} must be a positive number of milliseconds (0 disables)"
        )
    return value / 1000.0


@dataclass(frozen=True)
class SilencePolicy:
    attention: float | None  # seconds of caller silence before a re-prompt
    attention_prompt: str
    inactivity: float | None  # seconds of caller silence before the call ends
    goodbye: str


class SilenceWatch:
    """Counts caller silence while the agent waits; fires attention and inactivity callbacks."""

    def __init__(
        self,
        clock: Clock,
        policy: SilencePolicy,
        on_attention: Callable[[str], None],
        on_inactivity: Callable[[], Awaitable[None]],
    ) -> None:
        self._clock = clock
        self._policy = policy
        self._on_attention = on_attention
        self._on_inactivity = on_inactivity
        self._waiting = False  # the agent is idle, waiting for the caller
        self._changed = asyncio.Event()
        self._silence = 0.0  # accumulated silence since the caller last spoke
        self._since_attention = 0.0
        self._epoch = 0
        self._stopped = False

    def caller_activity(self) -> None:
        self._silence = 0.0
        self._since_attention = 0.0
        self._epoch += 1  # silence measured before this moment no longer counts
        self._changed.set()

    def set_waiting(self, waiting: bool) -> None:
        if waiting != self._waiting:
            self._waiting = waiting
            self._changed.set()

    def stop(self) -> None:
        self._stopped = True
        self._changed.set()

    def _next_deadline(self) -> float | None:
        options = []
        if self._policy.inactivity is not None:
            options.append(self._policy.inactivity - self._silence)
        if self._policy.attention is not None:
            options.append(self._policy.attention - self._since_attention)
        return max(0.0, min(options)) if options else None

    async def run(self) -> None:
        while not self._stopped:
            self._changed.clear()
            deadline = self._next_deadline() if self._waiting else None
            if deadline is None:
                await self._changed.wait()
                continue
            epoch = self._epoch
            started = self._clock.monotonic()
            with contextlib.suppress(Deadline):
                await within(self._clock, deadline, self._changed.wait())
            if self._epoch == epoch:
                elapsed = self._clock.monotonic() - started
                self._silence += elapsed
                self._since_attention += elapsed
            if self._stopped:
                return
            if self._changed.is_set() or not self._waiting:
                continue  # paused, resumed or reset: recompute the deadline
            if self._policy.inactivity is not None and self._silence >= self._policy.inactivity - 1e-9:
                self._stopped = True
                await self._on_inactivity()
                return
            if self._policy.attention is not None and self._since_attention >= self._policy.attention - 1e-9:
                self._since_attention = 0.0
                self._waiting = False  # the agent is about to speak
                self._on_attention(self._policy.attention_prompt)
