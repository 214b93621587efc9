"""The `console` channel behind `callgate chat`: the caller is the person at the terminal.

Agent speech is printed as it is said (no pause: `say()` returns at once); each line typed is the
caller's final transcript. `/dtmf 12#` presses keys, `/hangup` hangs up, and end of input (Ctrl-D)
or Ctrl-C (see `install_sigint`) is the caller hanging up. Hold, playback, transfer and hang-up are
printed as dim status lines.

Input is read by a daemon thread: a blocking read of a terminal cannot be cancelled, and a daemon
thread never keeps the process alive (an executor thread would, at loop shutdown).

Wiring for `callgate chat AGENT`:

    switch = ConsoleSwitch(console)
    call = ConsoleCall(console, switch=switch)
    call.install_sigint()
    ... run the agent with `call` / `switch` and a SystemClock ...
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import sys
import threading
from collections.abc import AsyncIterator, Iterable
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape

from callgate.channels.legs import (
    EventFeed,
    IllegalLegTransition,
    LegIdentity,
    LegState,
    LegStateMachine,
    check_bridgeable,
)
from callgate.swaig.urlguard import Guard
from callgate.telephony.base import (
    CallEnded,
    CallerSpeech,
    CallEvent,
    Destination,
    DialFailed,
    Dtmf,
    EndedReason,
    RemoteHangup,
)
from callgate.telephony.clock import Clock, SystemClock
from callgate.timeline import Timeline, Utterance

__all__ = ["ConsoleCall", "ConsolePlayback", "ConsoleSwitch", "parse_line"]

HELP = "Type what the caller says. /dtmf DIGITS presses keys, /hangup hangs up, Ctrl-D or Ctrl-C ends."
_ids = itertools.count(1)


def parse_line(line: str) -> CallEvent | str | None:
    """A typed line as a call event; None for a blank line; a string is a usage message."""
    text = line.strip()
    if not text:
        return None
    if not text.startswith("/"):
        return CallerSpeech(text=text, final=True)
    command, _, argument = text[1:].partition(" ")
    command = command.lower()
    if command in {"hangup", "bye", "quit", "exit"}:
        return RemoteHangup(cause="hangup")
    if command == "dtmf":
        digits = argument.strip().replace(" ", "")
        if digits and all(ch in "0123456789*#ABCDabcd" for ch in digits):
            return Dtmf(digits=digits)
        return "usage: /dtmf DIGITS (0-9, *, #, A-D)"
    return f"unknown command /{command}. {HELP}"


class ConsolePlayback:
    """A play() on the console: nothing is heard; looping ones run until stopped or the call ends."""

    def __init__(self, call: ConsoleCall, source: str, loop: bool) -> None:
        self._call = call
        self.source = source
        self.loop = loop
        self._done = asyncio.Event()
        if not loop:
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def _finish(self) -> None:
        self._done.set()

    async def stop(self) -> None:
        if not self._done.is_set():
            self._done.set()
            self._call._status(f"♪ stopped {self.source}")

    async def wait(self) -> None:
        await self._done.wait()


class ConsoleCall(LegIdentity):
    """A Call whose far end is the terminal."""

    def __init__(
        self,
        console: Console | None = None,
        input: TextIO | None = None,
        *,
        leg: str = "caller",
        speaker_label: str = "Agent",
        from_number: str = "console",
        to_number: str = "agent",
        caller_name: str = "You",
        switch: ConsoleSwitch | None = None,
        clock: Clock | None = None,
        timeline: Timeline | None = None,
        read_input: bool = True,
        transfer_timeout: float = 30.0,
    ) -> None:
        self.console = console if console is not None else Console()
        self._input = input
        self.leg = leg
        self.speaker_label = speaker_label
        self._call_id = f"console-{next(_ids)}-{leg}"
        self._from = from_number
        self._to = to_number
        self._caller_name = caller_name
        self.switch = switch
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.timeline = timeline if timeline is not None else Timeline()
        self.utterances: list[Utterance] = []
        self.transfer_timeout = transfer_timeout
        self._read_input = read_input
        self._machine = LegStateMachine()
        self._feed = EventFeed()
        self._ended = asyncio.Event()
        self._playbacks: list[ConsolePlayback] = []
        self._reader: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started_at: float | None = None
        self.ended_reason: str | None = None
        self.transferred_to: str | None = None

    # ------------------------------------------------------------ identity and state

    def now(self) -> float:
        if self._started_at is None:
            self._started_at = self.clock.monotonic()
        return self.clock.monotonic() - self._started_at

    def _status(self, text: str) -> None:
        self.console.print(f"[dim]  ({escape(text)})[/dim]")

    def _note(self, kind: str, **data: Any) -> None:
        self.timeline.add(self.now(), kind, self.leg, **data)

    def _activate(self) -> None:
        if self._machine.state is LegState.RINGING:
            self._machine.move(LegState.ACTIVE)
            self._note("answered")
            if self._read_input:
                self._status(HELP)

    # ------------------------------------------------------------ the Call protocol

    async def answer(self) -> None:
        if self.ended:
            raise CallEnded("the call has ended")
        self._activate()
        self._start_reader()

    async def say(self, text: str) -> None:
        if not self.ended:
            self._activate()
        if self.held:
            self._note("say-refused", text=text, why="held")
        self._machine.require_usable(allow_held=False)
        if not text.strip():
            return
        start = self.now()
        self.console.print(f"[bold cyan]{escape(self.speaker_label)}:[/bold cyan] {escape(text)}")
        self._note("say", text=text)
        self.utterances.append(Utterance(text=text, start=start, end=self.now(), leg=self.leg))

    def interrupt_speech(self) -> None:
        """Printed speech is "played" at once: there is never a say() in progress to cut."""

    async def play(self, source: str, loop: bool = False, *, guard: Guard | None = None) -> ConsolePlayback:
        if not self.ended:
            self._activate()
        self._machine.require_usable(allow_held=True)
        self._status(f"♪ playing {source}" + (" (looping)" if loop else ""))
        self._note("play", source=source, loop=loop)
        playback = ConsolePlayback(self, source, loop)
        self._playbacks.append(playback)
        return playback

    async def hold(self) -> None:
        if self.held:
            return
        if not self.ended:
            self._activate()
        self._machine.move(LegState.HELD)
        self._note("hold")
        self._status("you are on hold: the agent cannot hear you")

    async def unhold(self) -> None:
        if self.ended:
            raise CallEnded("the call has ended")
        if not self.held:
            return
        self._machine.move(LegState.ACTIVE)
        self._note("unhold")
        self._status("off hold")

    async def transfer(self, destination: Destination) -> None:
        if not self.ended:
            self._activate()
        self._machine.require_usable(allow_held=True)
        self._status(f"transferring you to {destination.value}…")
        self._note("transfer", to=destination.value, mode="blind")
        try:
            if self.switch is None:
                raise DialFailed("unreachable", "the console cannot place calls")
            remote = await self.switch.dial(destination, self._from, self.transfer_timeout)
        except DialFailed as failure:
            self._status(f"transfer to {destination.value} failed: {failure.code}")
            self._note("transfer-failed", to=destination.value, code=failure.code)
            raise
        if self.ended:  # the caller left while it rang
            await remote.hangup("cancelled")
            raise CallEnded("the caller hung up during the transfer")
        with contextlib.suppress(IllegalLegTransition, CallEnded):
            remote._machine.move(LegState.BRIDGED)
        self.transferred_to = destination.value
        self._note("transferred", to=destination.value)
        self._status(f"transferred to {destination.value}: the call is theirs now")
        self._end(str(EndedReason.ASSISTANT_FORWARDED_CALL), drop_pending=True)

    async def hangup(self, reason: str) -> None:
        if self.ended:
            return
        self._note("hangup", reason=reason)
        self._status(f"the agent hung up: {reason}")
        self._end(reason, drop_pending=True)

    async def events(self) -> AsyncIterator[CallEvent]:
        self._start_reader()
        async for event in self._feed:
            yield event

    # ------------------------------------------------------------ the terminal's side

    def interrupt(self) -> None:
        """Ctrl-C: the caller hangs up."""
        self._remote_hangup("interrupt")

    def install_sigint(self) -> bool:
        """Make Ctrl-C hang up this call instead of killing the program (Unix main thread only)."""
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, self.interrupt)
        except (NotImplementedError, RuntimeError, ValueError):
            return False
        return True

    def _start_reader(self) -> None:
        if self._reader is not None or not self._read_input or self.ended:
            return
        self._loop = asyncio.get_running_loop()
        stream = self._input if self._input is not None else sys.stdin
        self._reader = threading.Thread(target=self._read, args=(stream,), name="console-input", daemon=True)
        self._reader.start()

    def _read(self, stream: TextIO) -> None:
        try:
            for line in iter(stream.readline, ""):
                self._deliver(self._on_line, line)
        except (OSError, ValueError):  # closed stream
            pass
        self._deliver(self._remote_hangup, "eof")

    def _deliver(self, handler: Any, argument: str) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
            loop.call_soon_threadsafe(handler, argument)

    def type_line(self, line: str, *, echo: bool = True) -> None:
        """Act as if the person typed `line` (scripted demos); echoed like typed input."""
        if echo and not self.ended:
            self.console.print(f"[bold cyan]{escape(self._caller_name)}:[/] {escape(line.strip())}")
        self._on_line(line)

    def _on_line(self, line: str) -> None:
        parsed = parse_line(line)
        if parsed is None or self.ended:
            return
        if isinstance(parsed, str):
            self._status(parsed)
            return
        if isinstance(parsed, RemoteHangup):
            self._remote_hangup(parsed.cause)
            return
        if self._machine.state in (LegState.HELD, LegState.BRIDGED):
            self._note("caller-says-dropped", why=str(self._machine.state), line=line.strip())
            self._status("you are on hold: the agent cannot hear you")
            return
        self._note("caller-says" if isinstance(parsed, CallerSpeech) else "dtmf", line=line.strip())
        self._feed.put(parsed)

    def _remote_hangup(self, cause: str) -> None:
        if self.ended:
            return
        self._note("remote-hangup", cause=cause)
        self._status("you hung up")
        self._feed.put(RemoteHangup(cause=cause))
        self._end(str(EndedReason.CUSTOMER_ENDED_CALL), drop_pending=False)

    def _end(self, reason: str, *, drop_pending: bool) -> None:
        self._machine.move(LegState.ENDED)
        self.ended_reason = reason
        self._feed.close(drop_pending=drop_pending)
        for playback in self._playbacks:
            playback._finish()
        self._ended.set()

    async def wait_ended(self) -> None:
        await self._ended.wait()


class ConsoleSwitch:
    """The console cannot place calls: every dial fails as `unreachable`, except to destinations
    listed in `reachable`, which answer at once (their speech is printed, labelled with the name)."""

    def __init__(self, console: Console | None = None, *, reachable: Iterable[str] = ()) -> None:
        self.console = console if console is not None else Console()
        self.reachable = set(reachable)
        self.bridges: list[tuple[str, str]] = []

    async def dial(self, destination: Destination, caller_id: str, timeout: float) -> ConsoleCall:
        if destination.value not in self.reachable:
            self.console.print(f"[dim]  (dialling {escape(destination.value)}: unreachable)[/dim]")
            raise DialFailed("unreachable", "the console cannot place calls")
        self.console.print(f"[dim]  ({escape(destination.value)} answered)[/dim]")
        leg = ConsoleCall(
            self.console,
            leg=destination.value,
            speaker_label=f"Agent → {destination.value}",
            from_number=caller_id,
            to_number=destination.value,
            switch=self,
            read_input=False,
        )
        await leg.answer()
        return leg

    async def bridge(self, a: Any, b: Any) -> None:
        if not isinstance(a, ConsoleCall) or not isinstance(b, ConsoleCall):
            raise TypeError("the console switch bridges only console legs")
        check_bridgeable(a, b)
        for call in (a, b):
            call._machine.move(LegState.BRIDGED)
        self.bridges.append((a.leg, b.leg))
        self.console.print(f"[dim]  (connected {escape(a.leg)} ↔ {escape(b.leg)}; the agent has left)[/dim]")
