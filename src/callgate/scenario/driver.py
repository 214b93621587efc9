"""The caller's side of a scenario call: runs the `turns` against a call under test (DESIGN §6).

Turn semantics:
- every turn starts once the agent has finished responding to what came before (`agent_idle()`),
  or at once while the caller is on hold or being transferred (the runner never waits for a
  transfer to finish). So `wait: 35s` is 35 s of silence counted from the end of the agent's answer;
- `user` speaks, `wait` sleeps on the clock with the caller silent, `dtmf` presses keys, `hangup`
  hangs up the caller's leg;
- a turn due after the call ended is skipped and noted in the timeline (expectations decide whether
  that matters);
- after the last turn the call runs until it ends by itself; `max_duration` (virtual seconds from the
  start of the call) caps the whole call: when reached, the caller hangs up and unrun turns are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

from callgate.scenario.format import BargeTurn, DtmfTurn, HangupTurn, Turn, UserTurn, WaitTurn
from callgate.telephony.clock import Clock
from callgate.timeline import CallOutcome, Timeline

# Event-loop passes given to the engine after each turn (see TurnDriver._settle).
SETTLE_YIELDS = 20


class CallUnderTest(Protocol):
    """The engine's side of a scenario call (implemented in `callgate.runtime.scenario_call`)."""

    async def start(self) -> None:
        """Answer; the agent opens the call (first model request)."""
        ...

    async def agent_idle(self) -> None:
        """Return once the agent has finished responding to the latest input (speech done, tools
        done), or the caller is on hold / being transferred, or the call ended."""
        ...

    @property
    def ended(self) -> bool: ...

    @property
    def caller_on_hold(self) -> bool:
        """Held or being transferred: user turns go at once."""
        ...

    async def finish(self) -> CallOutcome:
        """Wait for post-call work (post_prompt, report delivery) and return the outcome."""
        ...


class CallerLeg(Protocol):
    """What the driver does as the caller (the sim channel's `SimCall`)."""

    async def caller_says(self, text: str) -> None: ...

    async def press(self, digits: str) -> None: ...

    async def remote_hangup(self) -> None: ...

    async def wait_ended(self) -> None:
        """Return once the leg has ended, whoever hung up."""
        ...


async def perform(turn: Turn, leg: CallerLeg, clock: Clock) -> None:
    """Do one turn as the party on `leg` (the caller, or a supervisor on a dialled leg)."""
    if isinstance(turn, UserTurn):
        await leg.caller_says(turn.user)
    elif isinstance(turn, BargeTurn):
        await clock.sleep(turn.after)
        await leg.caller_says(turn.barge)
    elif isinstance(turn, WaitTurn):
        await clock.sleep(turn.wait)
    elif isinstance(turn, DtmfTurn):
        await leg.press(turn.dtmf)
    elif isinstance(turn, HangupTurn):
        await leg.remote_hangup()


def describe_turn(turn: Turn) -> str:
    if isinstance(turn, UserTurn):
        return f"user: {turn.user!r}"
    if isinstance(turn, BargeTurn):
        return f"barge: {turn.barge!r} after {turn.after:g}s"
    if isinstance(turn, WaitTurn):
        return f"wait: {turn.wait:g}s"
    if isinstance(turn, DtmfTurn):
        return f"dtmf: {turn.dtmf!r}"
    return "hangup"


class TurnDriver:
    """Runs one scenario's turns; `run()` returns when the call has ended."""

    def __init__(
        self,
        call: CallUnderTest,
        caller: CallerLeg,
        turns: Sequence[Turn],
        *,
        clock: Clock,
        timeline: Timeline,
        max_duration: float,
        now: Callable[[], float] | None = None,
    ) -> None:
        self._call = call
        self._caller = caller
        self._turns = list(turns)
        self._clock = clock
        self._now = now or clock.monotonic
        self._timeline = timeline
        self._max_duration = max_duration
        self._next_turn = 0
        self.capped = False

    async def run(self) -> None:
        body = asyncio.create_task(self._body(), name="scenario-turns")
        cap = asyncio.create_task(self._clock.sleep(self._max_duration), name="scenario-max-duration")
        try:
            await asyncio.wait({body, cap}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cap.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cap
        if body.done():
            body.result()  # re-raise an error of the call under test
            return
        body.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await body
        self.capped = True
        self._note("max-duration", seconds=self._max_duration)
        for index in range(self._next_turn, len(self._turns)):
            self._skip(index, "max_duration reached")
        if not self._call.ended:
            await self._caller.remote_hangup()

    async def _body(self) -> None:
        await self._call.start()
        await self._settle()
        for index, turn in enumerate(self._turns):
            talks_over = isinstance(turn, BargeTurn)  # said while the agent may still be speaking
            if not talks_over and not self._call.ended and not self._call.caller_on_hold:
                await self._call.agent_idle()
            # From here this turn is either run or skipped; the cap only notes turns after it.
            self._next_turn = index + 1
            if self._call.ended:
                self._skip(index, "the call had ended")
                continue
            self._note("turn", index=index, turn=describe_turn(turn))
            await self._perform(turn)
            await self._settle()
        if not self._call.ended:
            await self._wait_ended()

    async def _wait_ended(self) -> None:
        """Until the caller's leg ends or the engine is done with the call (after a warm transfer's
        bridge the caller's leg stays up, talking to the supervisor, but the call is over for us)."""
        waiters = [asyncio.ensure_future(self._caller.wait_ended())]
        engine_done = getattr(self._call, "wait_ended", None)
        if engine_done is not None:
            waiters.append(asyncio.ensure_future(engine_done()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    @staticmethod
    async def _settle() -> None:
        """Let the engine pick up what the caller just did before anyone asks whether it is idle.

        Input travels through queues to the engine's tasks; yielding (no virtual time passes) lets
        them take it and mark the agent busy, so `agent_idle()` cannot answer for the previous turn.
        """
        for _ in range(SETTLE_YIELDS):
            await asyncio.sleep(0)

    async def _perform(self, turn: Turn) -> None:
        await perform(turn, self._caller, self._clock)

    def _skip(self, index: int, why: str) -> None:
        self._note("turn-skipped", index=index, turn=describe_turn(self._turns[index]), reason=why)

    def _note(self, kind: str, **data: object) -> None:
        self._timeline.add(self._now(), kind, "caller", **data)


class SupervisorLeg(Protocol):
    """A party the switch dialled (the sim channel's answered `SimCall`), driven by its `turns`."""

    @property
    def ended(self) -> bool: ...

    async def caller_says(self, text: str) -> None: ...

    async def press(self, digits: str) -> None: ...

    async def remote_hangup(self) -> None: ...

    async def wait_ended(self) -> None: ...


class LegAgentIdle(Protocol):
    async def leg_agent_idle(self, leg: Any) -> None:
        """Return once the agent on `leg` (the warm transfer's consult agent) has finished responding."""
        ...


class LegDriver:
    """Runs a dialled leg's `turns` (what the supervisor says), like the caller's (DESIGN §6).

    Each turn waits until the agent on that leg has finished responding (the call under test's
    `leg_agent_idle`, if it has one) or the leg has ended; a turn due after the leg ended is skipped.
    """

    def __init__(
        self,
        call: CallUnderTest,
        leg: SupervisorLeg,
        name: str,
        turns: Sequence[Turn],
        *,
        clock: Clock,
        timeline: Timeline,
        now: Callable[[], float] | None = None,
    ) -> None:
        self._call = call
        self._leg = leg
        self._name = name
        self._turns = list(turns)
        self._clock = clock
        self._timeline = timeline
        self._now = now or clock.monotonic

    async def run(self) -> None:
        for index, turn in enumerate(self._turns):
            if not self._leg.ended:
                await self._agent_idle()
            if self._leg.ended:
                for rest in range(index, len(self._turns)):
                    self._note(
                        "turn-skipped",
                        index=rest,
                        turn=describe_turn(self._turns[rest]),
                        reason="the leg had ended",
                    )
                return
            self._note("turn", index=index, turn=describe_turn(turn))
            await self._perform(turn)
            await TurnDriver._settle()

    async def _agent_idle(self) -> None:
        waiter = getattr(self._call, "leg_agent_idle", None)
        if waiter is None:
            return
        idle = asyncio.ensure_future(cast(LegAgentIdle, self._call).leg_agent_idle(self._leg))
        gone = asyncio.ensure_future(self._leg.wait_ended())
        try:
            await asyncio.wait({idle, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (idle, gone):
                task.cancel()
            await asyncio.gather(idle, gone, return_exceptions=True)

    async def _perform(self, turn: Turn) -> None:
        await perform(turn, self._leg, self._clock)

    def _note(self, kind: str, **data: object) -> None:
        self._timeline.add(self._now(), kind, self._name, **data)


async def drive(
    call: CallUnderTest,
    caller: CallerLeg,
    turns: Sequence[Turn],
    *,
    clock: Clock,
    timeline: Timeline,
    max_duration: float,
    now: Callable[[], float] | None = None,
) -> CallOutcome:
    """Run the turns, let the call end (or cap it), then wait for post-call work; the outcome."""
    driver = TurnDriver(
        call, caller, turns, clock=clock, timeline=timeline, max_duration=max_duration, now=now
    )
    await driver.run()
    return await call.finish()
