"""The sim switch: every LegSpec answer kind, ring timing, blind transfer and bridging."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from pydantic import ValidationError

from callgate.channels.legs import LegState
from callgate.channels.sim import LegSpec, SimCall, SimSwitch, SimWorld
from callgate.telephony.base import CallEnded, Destination, DialFailed
from callgate.telephony.clock import VirtualClock, run_virtual

T = TypeVar("T")

LEGS: dict[str, Any] = {
    "+15550002222": {"answer": True, "after": "3s", "turns": [{"user": "Yes, put them through."}]},
    "+15550003333": {"answer": False},
    "sip:sales@example.com": {"answer": "busy"},
    "+15550004444": {"answer": "reject", "after": 1},
    "+15550005555": {"answer": True, "after": "2m"},
}


def sim(body: Callable[[SimWorld], Awaitable[T]]) -> T:
    async def main(clock: VirtualClock) -> T:
        return await body(SimWorld(clock, legs=LEGS))

    return run_virtual(main)


async def dial_failure(world: SimWorld, to: str, timeout: float = 30) -> tuple[str, float]:
    started = world.now()
    with pytest.raises(DialFailed) as failure:
        await world.switch.dial(Destination.parse(to), "+15551230000", timeout)
    return failure.value.code, world.now() - started


@pytest.mark.parametrize(
    ("to", "timeout", "code", "elapsed"),
    [
        ("+15550003333", 20, "no-answer", 20.0),  # rings until the timeout
        ("sip:sales@example.com", 30, "busy", 0.0),
        ("sales@example.com", 30, "busy", 0.0),  # same leg without the sip: prefix
        ("+15550004444", 30, "rejected", 1.0),
        ("+15550005555", 30, "no-answer", 30.0),  # answers after 2 minutes: too late
        ("+15559999999", 30, "rejected", 0.0),  # not declared
    ],
)
def test_dial_failures(to: str, timeout: float, code: str, elapsed: float) -> None:
    async def body(world: SimWorld) -> tuple[str, float]:
        return await dial_failure(world, to, timeout)

    assert sim(body) == (code, elapsed)


def test_dial_answered_after_ringing() -> None:
    async def body(world: SimWorld) -> None:
        answered: list[SimCall] = []
        world.switch.on_answer(answered.append)
        waiting = asyncio.create_task(world.switch.wait_for_leg("+15550002222"))
        leg = await world.switch.dial(Destination.parse("+1 (555) 000-2222"), "+15551230000", 30)
        assert world.now() == 3.0
        assert leg.leg == "+15550002222"
        assert leg.from_number == "+15551230000"
        assert leg.state is LegState.ACTIVE
        assert answered == [leg]
        assert await waiting is leg
        assert await world.switch.wait_for_leg("+15550002222") is leg
        await leg.say("Hello supervisor")
        assert world.utterances[-1].leg == "+15550002222"
        assert [e.kind for e in world.timeline.events] == ["dial", "dial-answered", "say"]
        assert world.timeline.events[1].t == 3.0

    sim(body)


def test_dial_can_be_cancelled() -> None:
    async def body(world: SimWorld) -> None:
        dialling = asyncio.create_task(world.switch.dial(Destination.parse("+15550003333"), "x", 60))
        await world.clock.sleep(5)
        dialling.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dialling
        assert world.timeline.events[-1].kind == "dial-cancelled"

    sim(body)


def test_blind_transfer_completes_and_ends_the_caller_leg() -> None:
    async def body(world: SimWorld) -> None:
        caller = world.caller
        await caller.answer()
        await caller.transfer(Destination.parse("+15550002222"))
        assert caller.ended
        assert caller.ended_reason == "assistant-forwarded-call"
        assert caller.transferred_to == "+15550002222"
        assert caller.hangup_at == 3.0
        remote = world.switch.answered["+15550002222"]
        assert remote.state is LegState.BRIDGED
        assert [e async for e in caller.events()] == []

    sim(body)


@pytest.mark.parametrize(
    ("to", "code"),
    [("sip:sales@example.com", "busy"), ("+15550003333", "no-answer"), ("+15551112222", "rejected")],
)
def test_blind_transfer_failure_keeps_the_caller(to: str, code: str) -> None:
    async def body(world: SimWorld) -> None:
        caller = world.caller
        await caller.answer()
        with pytest.raises(DialFailed) as failure:
            await caller.transfer(Destination.parse(to))
        assert failure.value.code == code
        assert not caller.ended
        assert world.timeline.of_kind("transfer-failed")[0].data["code"] == code
        await caller.say("Sorry, nobody is available.")

    sim(body)


def test_caller_hanging_up_during_transfer_cancels_it() -> None:
    async def body(world: SimWorld) -> None:
        caller = world.caller
        await caller.answer()

        async def leave() -> None:
            await world.clock.sleep(1)
            await caller.remote_hangup()

        leaving = asyncio.create_task(leave())
        with pytest.raises(CallEnded):
            await caller.transfer(Destination.parse("+15550002222"))
        await leaving
        assert caller.ended_reason == "customer-ended-call"
        assert "transfer-cancelled" in [e.kind for e in world.timeline.events]
        assert "+15550002222" not in world.switch.answered

    sim(body)


def test_bridge_joins_two_legs() -> None:
    async def body(world: SimWorld) -> None:
        caller = world.caller
        await caller.answer()
        await caller.hold()
        supervisor = await world.switch.dial(Destination.parse("+15550002222"), "+15551230000", 30)
        await world.switch.bridge(caller, supervisor)
        assert caller.bridged_with is supervisor
        assert supervisor.bridged_with is caller
        assert world.switch.bridges == [("caller", "+15550002222")]
        bridge = world.timeline.of_kind("bridge")[0]
        assert bridge.data == {"a": "caller", "b": "+15550002222"}
        await caller.caller_says("thanks")  # to the supervisor, not the agent
        assert "caller-says-dropped" in [e.kind for e in world.timeline.events]
        with pytest.raises(ValueError):
            await world.switch.bridge(caller, caller)

    sim(body)


def test_bridge_refuses_ended_and_foreign_legs() -> None:
    async def body(world: SimWorld) -> None:
        other = SimCall(clock=world.clock, leg="x", answered=True)
        await other.hangup("done")
        await world.caller.answer()
        with pytest.raises(CallEnded):
            await world.switch.bridge(world.caller, other)
        with pytest.raises(TypeError):
            await world.switch.bridge(world.caller, object())

    sim(body)


def test_switch_validates_raw_leg_specs() -> None:
    async def body(world: SimWorld) -> None:
        switch = SimSwitch({"+1": {"answer": "busy"}}, world.clock)
        assert switch.legs["+1"].answer == "busy"
        with pytest.raises(ValidationError):
            SimSwitch({"+1": {"answer": "maybe"}}, world.clock)

    sim(body)


@pytest.mark.parametrize(
    ("raw", "answer", "after"),
    [
        ({}, True, 0.0),
        ({"answer": True, "after": "3s"}, True, 3.0),
        ({"answer": False}, False, 0.0),
        ({"answer": "busy"}, "busy", 0.0),
        ({"answer": "Reject", "after": "500ms"}, "reject", 0.5),
        ({"answer": "true", "after": 1.5}, True, 1.5),
        ({"answer": "false", "after": "2m"}, False, 120.0),
    ],
)
def test_leg_spec_accepts(raw: dict[str, Any], answer: object, after: float) -> None:
    spec = LegSpec.model_validate(raw)
    assert spec.answer == answer
    assert spec.after == after


@pytest.mark.parametrize(
    "raw",
    [
        {"answer": "maybe"},
        {"answer": 1},
        {"answer": None},
        {"after": "soon"},
        {"after": "-3s"},
        {"after": True},
        {"answr": True},
        {"turns": "hello"},
    ],
)
def test_leg_spec_rejects(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        LegSpec.model_validate(raw)


def test_leg_spec_keeps_turns_raw() -> None:
    turns = [{"user": "Yes"}, {"wait": "2s"}, "hangup"]
    assert LegSpec.model_validate({"turns": turns}).turns == turns
