"""The console channel: typed lines become caller events, agent speech and status are printed."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator, Callable

import pytest
from rich.console import Console

from callgate.channels.console import ConsoleCall, ConsoleSwitch, parse_line
from callgate.channels.legs import HeldError, LegState
from callgate.telephony.base import (
    Call,
    CallEnded,
    CallerSpeech,
    CallEvent,
    Destination,
    DialFailed,
    Dtmf,
    RemoteHangup,
    Switch,
)


def make_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, color_system=None, force_terminal=False), out


async def collect(call: ConsoleCall) -> list[CallEvent]:
    return await asyncio.wait_for(_collect(call), timeout=10)


async def _collect(call: ConsoleCall) -> list[CallEvent]:
    return [event async for event in call.events()]


async def until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout=10)


@pytest.fixture
async def pipe() -> AsyncIterator[tuple[io.TextIOWrapper, io.TextIOWrapper]]:
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "r", buffering=1)
    writer = os.fdopen(write_fd, "w", buffering=1)
    try:
        yield reader, writer
    finally:
        if not writer.closed:
            writer.close()  # EOF lets the reader thread finish
        await asyncio.sleep(0.05)
        reader.close()


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("hello there\n", CallerSpeech("hello there")),
        ("   \n", None),
        ("/dtmf 12#\n", Dtmf("12#")),
        ("/DTMF 1 2\n", Dtmf("12")),
        ("/hangup", RemoteHangup("hangup")),
        ("/bye", RemoteHangup("hangup")),
    ],
)
def test_parse_line(line: str, parsed: object) -> None:
    assert parse_line(line) == parsed


@pytest.mark.parametrize("line", ["/dtmf", "/dtmf 1x", "/transfer me"])
def test_parse_line_usage(line: str) -> None:
    message = parse_line(line)
    assert isinstance(message, str)
    assert "/dtmf" in message or "DIGITS" in message


def test_protocols() -> None:
    console, _ = make_console()
    assert isinstance(ConsoleCall(console, io.StringIO()), Call)
    assert isinstance(ConsoleSwitch(console), Switch)


async def test_lines_become_events_and_eof_hangs_up() -> None:
    console, out = make_console()
    call = ConsoleCall(console, io.StringIO("hello\n\n/dtmf 12#\n/dtmf x\n/foo\nbye now\n"))
    await call.answer()
    events = await collect(call)
    assert events == [CallerSpeech("hello"), Dtmf("12#"), CallerSpeech("bye now"), RemoteHangup("eof")]
    assert call.ended
    assert call.ended_reason == "customer-ended-call"
    text = out.getvalue()
    assert "usage: /dtmf" in text
    assert "unknown command /foo" in text
    assert "you hung up" in text


async def test_agent_speech_is_printed_verbatim() -> None:
    console, out = make_console()
    call = ConsoleCall(console, io.StringIO(""), read_input=False)
    await call.answer()
    await call.say("Hi, this is [bold]Frank[/bold]!")
    await call.say("  ")
    assert "Agent: Hi, this is [bold]Frank[/bold]!" in out.getvalue()
    assert [u.text for u in call.utterances] == ["Hi, this is [bold]Frank[/bold]!"]


async def test_hold_drops_typed_lines(pipe: tuple[io.TextIOWrapper, io.TextIOWrapper]) -> None:
    reader, writer = pipe
    console, out = make_console()
    call = ConsoleCall(console, reader)
    await call.answer()
    await call.hold()
    with pytest.raises(HeldError):
        await call.say("are you still there?")
    music = await call.play("hold.mp3", loop=True)
    writer.write("hello? anyone?\n")
    await until(lambda: bool(call.timeline.of_kind("caller-says-dropped")))
    await call.unhold()
    await music.stop()
    writer.write("I'm back\n/hangup\n")
    events = await collect(call)
    assert events == [CallerSpeech("I'm back"), RemoteHangup("hangup")]
    text = out.getvalue()
    assert "on hold" in text
    assert "♪ playing hold.mp3 (looping)" in text
    assert "off hold" in text


async def test_agent_hangup_is_idempotent_and_ends_events(
    pipe: tuple[io.TextIOWrapper, io.TextIOWrapper],
) -> None:
    reader, _ = pipe
    console, out = make_console()
    call = ConsoleCall(console, reader)
    await call.answer()
    await call.hangup("assistant-ended-call")
    await call.hangup("silence-timed-out")
    assert call.ended_reason == "assistant-ended-call"
    assert await collect(call) == []
    assert out.getvalue().count("the agent hung up") == 1
    with pytest.raises(CallEnded):
        await call.say("hello?")
    with pytest.raises(CallEnded):
        await call.unhold()


async def test_interrupt_is_the_caller_hanging_up(pipe: tuple[io.TextIOWrapper, io.TextIOWrapper]) -> None:
    reader, _ = pipe
    console, _ = make_console()
    call = ConsoleCall(console, reader)
    await call.answer()
    call.interrupt()
    call.interrupt()
    assert await collect(call) == [RemoteHangup("interrupt")]
    await asyncio.wait_for(call.wait_ended(), timeout=10)


async def test_transfer_is_unreachable_by_default() -> None:
    console, out = make_console()
    call = ConsoleCall(console, read_input=False, switch=ConsoleSwitch(console))
    await call.answer()
    with pytest.raises(DialFailed) as failure:
        await call.transfer(Destination.parse("+15550002222"))
    assert failure.value.code == "unreachable"
    assert not call.ended
    lone = ConsoleCall(console, read_input=False)
    with pytest.raises(DialFailed):
        await lone.transfer(Destination.parse("+15550002222"))
    assert "failed: unreachable" in out.getvalue()


async def test_transfer_to_a_reachable_destination_completes() -> None:
    console, out = make_console()
    call = ConsoleCall(console, read_input=False, switch=ConsoleSwitch(console, reachable=["+15550002222"]))
    await call.answer()
    await call.transfer(Destination.parse("+15550002222"))
    assert call.ended
    assert call.ended_reason == "assistant-forwarded-call"
    assert call.transferred_to == "+15550002222"
    assert "transferred to +15550002222" in out.getvalue()


async def test_warm_transfer_style_bridge() -> None:
    console, out = make_console()
    switch = ConsoleSwitch(console, reachable=["+15550002222"])
    call = ConsoleCall(console, read_input=False, switch=switch)
    await call.answer()
    await call.hold()
    supervisor = await switch.dial(Destination.parse("+15550002222"), "+15551230000", 30)
    await supervisor.say("Caller needs help with a refund.")
    assert "Agent → +15550002222: Caller needs help with a refund." in out.getvalue()
    await switch.bridge(call, supervisor)
    assert call.state is LegState.BRIDGED
    assert switch.bridges == [("caller", "+15550002222")]
    with pytest.raises(ValueError):
        await switch.bridge(call, call)
    with pytest.raises(TypeError):
        await switch.bridge(call, object())


async def test_playback() -> None:
    console, _ = make_console()
    call = ConsoleCall(console, read_input=False)
    await call.answer()
    once = await call.play("beep.wav")
    await asyncio.wait_for(once.wait(), timeout=10)
    looping = await call.play("music.wav", loop=True)
    assert not looping.done
    await call.hangup("assistant-ended-call")
    await asyncio.wait_for(looping.wait(), timeout=10)
    with pytest.raises(CallEnded):
        await call.play("beep.wav")
