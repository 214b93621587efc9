"""The sim channel's call leg: speech timing, cuts, hold, play, hang-up and the event feed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from callgate.channels.legs import BridgedError, HeldError, IllegalLegTransition, LegState, LegStateMachine
from callgate.channels.sim import SimCall, SimWorld, speech_seconds
from callgate.telephony.base import (
    Call,
    CallEnded,
    CallerSpeech,
    CallEvent,
    Destination,
    DialFailed,
    Dtmf,
    MediaTimeout,
    RemoteHangup,
    SpeechStarted,
)
from callgate.telephony.clock import VirtualClock, run_virtual

T = TypeVar("T")


def sim(body: Callable[[SimWorld], Awaitable[T]]) -> T:
    """Run `body` on a fresh virtual-time loop with a fresh simulated call."""

    async def main(clock: VirtualClock) -> T:
        return await body(SimWorld(clock, caller_name="Ann"))

    return run_virtual(main)


async def collect(call: SimCall) -> list[CallEvent]:
    return [event async for event in call.events()]


def kinds(world: SimWorld) -> list[str]:
    return [event.kind for event in world.timeline.events]


def test_sim_call_is_a_call() -> None:
    async def body(world: SimWorld) -> None:
        assert isinstance(world.caller, Call)
        assert world.caller.caller_name == "Ann"
        assert world.caller.call_id.endswith("caller")

    sim(body)


def test_speech_duration() -> None:
    assert speech_seconds("one two three four five") == 2.0
    assert speech_seconds("Hi") == pytest.approx(0.4)
    assert speech_seconds("") == 0.3  # the floor
    assert speech_seconds("one two three", words_per_minute=60) == 3.0


def test_say_takes_the_time_of_the_words_and_is_recorded() -> None:
    async def body(world: SimWorld) -> tuple[float, list[tuple[str, float, float, bool]]]:
        caller = world.caller
        await caller.answer()
        await caller.say("Hi, this is Frank. How can I help?")  # 8 words: 3.2 s
        await caller.say("Bye")
        return world.now(), [(u.text, u.start, u.end, u.cut) for u in world.utterances]

    now, utterances = sim(body)
    assert now == pytest.approx(3.6)
    assert utterances == [
        ("Hi, this is Frank. How can I help?", 0.0, pytest.approx(3.2), False),
        ("Bye", pytest.approx(3.2), pytest.approx(3.6), False),
    ]


def test_hangup_after_say_comes_after_it_finished() -> None:
    async def body(world: SimWorld) -> tuple[float, float | None, str | None]:
        caller = world.caller
        await caller.answer()
        await caller.say("Thank you for calling, goodbye!")
        await caller.hangup("assistant-ended-call")
        return world.utterances[-1].end, caller.hangup_at, caller.ended_reason

    said_end, hangup_at, reason = sim(body)
    assert hangup_at is not None
    assert hangup_at >= said_end == pytest.approx(2.0)
    assert reason == "assistant-ended-call"


def test_remote_hangup_cuts_speech_short() -> None:
    async def body(world: SimWorld) -> tuple[list[str], list[str]]:
        caller = world.caller
        await caller.answer()

        async def leave() -> None:
            await world.clock.sleep(1.0)
            await caller.remote_hangup()

        leaving = asyncio.create_task(leave())
        with pytest.raises(CallEnded):
            await caller.say("one two three four five six seven eight nine ten")  # 4 s
        await leaving
        cut = world.timeline.of_kind("say-cut")[0]
        assert cut.t == pytest.approx(1.0)
        assert world.utterances[0].cut
        assert world.utterances[0].end == pytest.approx(1.0)
        assert caller.ended_reason == "customer-ended-call"
        return [u.text for u in world.utterances], [str(e) for e in await collect(caller)]

    texts, events = sim(body)
    assert texts == ["one two"]  # 2.5 words a second, cut at 1 s
    assert events == [str(RemoteHangup())]


def test_cancelled_say_records_the_cut() -> None:
    async def body(world: SimWorld) -> list[str]:
        caller = world.caller
        await caller.answer()
        speaking = asyncio.create_task(caller.say("one two three four five six seven eight"))
        await world.clock.sleep(2.0)
        speaking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await speaking
        assert not caller.ended
        return [u.text for u in world.utterances if u.cut]

    assert sim(body) == ["one two three four five"]


def test_hangup_is_idempotent_and_first_reason_wins() -> None:
    async def body(world: SimWorld) -> None:
        caller = world.caller
        await caller.answer()
        await caller.hangup("assistant-ended-call")
        await world.clock.sleep(5)
        await caller.hangup("silence-timed-out")
        await caller.remote_hangup()
        assert caller.ended_reason == "assistant-ended-call"
        assert caller.hangup_at == 0.0
        assert world.timeline.of_kind("hangup")[0].data == {"reason": "assistant-ended-call"}
        assert len(world.timeline.of_kind("hangup")) == 1
        assert not world.timeline.of_kind("remote-hangup")
        with pytest.raises(CallEnded):
            await caller.say("anyone there?")
        with pytest.raises(CallEnded):
            await caller.play("music.wav")
        with pytest.raises(CallEnded):
            await caller.hold()
        with pytest.raises(CallEnded):
            await caller.answer()

    sim(body)


def test_events_from_the_driver_in_order_then_end_on_remote_hangup() -> None:
    async def body(world: SimWorld) -> list[CallEvent]:
        caller = world.caller
        await caller.answer()
        await caller.caller_says("Hi there")
        await caller.caller_says("quietly", speech_started=False)
        await caller.press("1#")
        await caller.media_timeout()
        await caller.remote_hangup("gone")
        return await collect(caller)

    assert sim(body) == [
        SpeechStarted(),
        CallerSpeech("Hi there"),
        CallerSpeech("quietly"),
        Dtmf("1#"),
        MediaTimeout(),
        RemoteHangup("gone"),
    ]


def test_caller_speech_can_take_time() -> None:
    async def body(world: SimWorld) -> tuple[list[CallEvent], float]:
        caller = world.caller
        await caller.answer()
        events: list[CallEvent] = []

        async def listen() -> None:
            async for event in caller.events():
                events.append(event)
                if isinstance(event, CallerSpeech):
                    return

        listening = asyncio.create_task(listen())
        await caller.caller_says("a long sentence", seconds=2.5)
        await listening
        return events, world.now()

    events, now = sim(body)
    assert events == [SpeechStarted(), CallerSpeech("a long sentence")]
    assert now == 2.5


def test_our_hangup_ends_events_and_drops_pending() -> None:
    async def body(world: SimWorld) -> tuple[list[CallEvent], list[str]]:
        caller = world.caller
        await caller.answer()
        await caller.caller_says("unheard")
        await caller.hangup("assistant-ended-call")
        await caller.caller_says("after the end")
        await caller.press("5")
        return await collect(caller), kinds(world)

    events, timeline = sim(body)
    assert events == []
    assert "caller-says-dropped" in timeline
    assert "dtmf-dropped" in timeline


def test_events_after_remote_hangup_are_dropped() -> None:
    async def body(world: SimWorld) -> list[CallEvent]:
        caller = world.caller
        await caller.remote_hangup()
        await caller.caller_says("too late")
        await caller.wait_ended()
        return await collect(caller)

    assert sim(body) == [RemoteHangup()]


def test_held_leg_drops_speech_and_refuses_say_but_can_hang_up() -> None:
    async def body(world: SimWorld) -> list[CallEvent]:
        caller = world.caller
        await caller.answer()
        await caller.hold()
        await caller.hold()  # idempotent
        assert caller.held
        await caller.caller_says("hello? anyone?")
        await caller.press("0")
        with pytest.raises(HeldError):
            await caller.say("You are on hold")
        music = await caller.play("hold.mp3", loop=True)  # hold music is allowed
        await caller.unhold()
        await caller.caller_says("I'm back")
        await music.stop()
        await caller.hold()
        await caller.remote_hangup()
        events = await collect(caller)
        assert "say-refused" in kinds(world)
        assert [e.kind for e in world.timeline.events].count("hold") == 2
        assert not world.utterances
        return events

    assert sim(body) == [SpeechStarted(), CallerSpeech("I'm back"), RemoteHangup()]


def test_hold_while_speaking_cuts_the_words() -> None:
    async def body(world: SimWorld) -> list[str]:
        caller = world.caller
        await caller.answer()

        async def hold_soon() -> None:
            await world.clock.sleep(0.8)
            await caller.hold()

        holding = asyncio.create_task(hold_soon())
        with pytest.raises(HeldError):
            await caller.say("please hold while I find someone for you")
        await holding
        return [u.text for u in world.utterances]

    assert sim(body) == ["please hold"]


def test_play_lasts_on_the_clock_and_stops() -> None:
    async def body(world: SimWorld) -> None:
        caller = world.caller
        await caller.answer()
        once = await caller.play("beep.wav")
        await once.wait()
        assert world.now() == 2.0
        assert once.how == "finished"
        looping = await caller.play("hold.mp3", loop=True)
        await world.clock.sleep(600)
        assert not looping.done
        await looping.stop()
        assert looping.how == "stopped"
        await looping.stop()  # again: harmless
        ended_with_call = await caller.play("hold.mp3", loop=True)
        await caller.hangup("assistant-ended-call")
        await ended_with_call.wait()
        assert ended_with_call.how == "call-ended"

    sim(body)


def test_operations_answer_a_ringing_leg_implicitly() -> None:
    async def body(world: SimWorld) -> None:
        caller = world.caller
        assert caller.state is LegState.RINGING
        await caller.say("Hello")
        assert caller.state is LegState.ACTIVE
        assert world.timeline.events[0].kind == "answered"
        assert world.timeline.events[0].data == {"implicit": "say"}

    sim(body)


def test_bad_dtmf_is_rejected() -> None:
    async def body(world: SimWorld) -> None:
        with pytest.raises(ValueError, match="DTMF"):
            await world.caller.press("1x")
        with pytest.raises(ValueError):
            await world.caller.press("")

    sim(body)


def test_empty_say_is_a_no_op() -> None:
    async def body(world: SimWorld) -> float:
        await world.caller.say("   ")
        return world.now()

    assert sim(body) == 0.0


def test_leg_state_machine() -> None:
    machine = LegStateMachine()
    with pytest.raises(IllegalLegTransition):
        machine.move(LegState.HELD)  # a ringing leg cannot be put on hold
    machine.move(LegState.ACTIVE)
    machine.move(LegState.BRIDGED)
    with pytest.raises(IllegalLegTransition):
        machine.move(LegState.ACTIVE)
    machine.move(LegState.ENDED)
    with pytest.raises(CallEnded):
        machine.move(LegState.ACTIVE)


def test_unhold_of_a_leg_not_held_is_a_no_op() -> None:
    async def body(world: SimWorld) -> list[str]:
        await world.caller.answer()
        await world.caller.unhold()
        return kinds(world)

    assert sim(body) == ["answered"]


def test_bad_words_per_minute() -> None:
    async def body(world: SimWorld) -> None:
        with pytest.raises(ValueError):
            SimCall(clock=world.clock, words_per_minute=0)

    sim(body)


def test_transfer_without_a_switch_is_unreachable() -> None:
    async def body(world: SimWorld) -> None:
        lone = SimCall(clock=world.clock, answered=True)
        with pytest.raises(DialFailed) as failure:
            await lone.transfer(Destination.parse("+15550001111"))
        assert failure.value.code == "unreachable"
        assert not lone.ended

    sim(body)


def test_bridged_leg_refuses_speech() -> None:
    async def body(world: SimWorld) -> None:
        world.switch.legs.clear()
        other = SimCall(clock=world.clock, leg="other", answered=True)
        await world.caller.answer()
        await world.switch.bridge(world.caller, other)
        with pytest.raises(BridgedError):
            await world.caller.say("still here?")
        with pytest.raises(BridgedError):
            await other.play("music.wav")
        with pytest.raises(IllegalLegTransition):
            await world.caller.hold()

    sim(body)
