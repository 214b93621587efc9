"""`callgate chat`: a call in the terminal, on the console channel, wired as every live call is."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from callgate import gc_tuning
from callgate.channels.console import HELP, ConsoleCall, ConsoleSwitch
from callgate.llm.types import ModelError
from callgate.records.async_store import AsyncStore
from callgate.records.store import StoreError
from callgate.redact import redact
from callgate.runtime.call_runner import CallRunner, CallSetup
from callgate.runtime.models import ModelPool
from callgate.runtime.post_call import SPOOLED, PostCallServices, deliver_in_background, finish_live_call
from callgate.swaig.context import CallContext
from callgate.swaig.guarded_transport import guarded_client
from callgate.swml.errors import DocumentError
from callgate.swml.fetch import CallInfo
from callgate.swml.loader import LoadResult, load_document
from callgate.telephony.clock import SystemClock
from callgate.timeline import CallOutcome


def chat(
    agent: Annotated[str, typer.Argument(help="The agent: a SWML file or an http(s) URL.")],
    from_number: Annotated[str, typer.Option("--from", help="The caller's number.")] = "+15550100000",
    to_number: Annotated[str, typer.Option("--to", help="The number called.")] = "+15550199999",
    name: Annotated[str, typer.Option(help="The caller's name.")] = "You",
) -> None:
    """Talk to an agent in the terminal: type as the caller, watch its speech and every call event."""
    console = Console(highlight=False)
    call_info = CallInfo(from_number=from_number, to_number=to_number, caller_name=name)
    loaded = load_agent(agent, console, call_info)
    # Typed at a terminal, lines go in as said (the caller may talk over the agent). Piped in, each line
    # waits for the agent's answer to the one before, and the end of input hangs up after the last answer.
    piped = None if sys.stdin.isatty() else _stdin_lines()
    outcome = asyncio.run(converse(loaded, console, from_number, to_number, name, lines=piped))
    raise typer.Exit(0 if outcome.ended_reason != "pipeline-error" else 1)


async def _type_lines(runner: CallRunner, call: ConsoleCall, lines: AsyncIterator[str]) -> None:
    """Type each line once the agent has answered the one before; hang up after the last answer."""
    ended = asyncio.ensure_future(runner.ended.wait())
    try:
        while True:
            await runner.agent_idle()
            following = asyncio.ensure_future(anext(lines, None))
            await asyncio.wait({following, ended}, return_when=asyncio.FIRST_COMPLETED)
            if runner.ended.is_set():
                following.cancel()
                return
            line = following.result()
            if line is None:
                break
            if line.strip():
                call.type_line(line)
                await _until_heard(runner)
        await runner.agent_idle()
        if not runner.ended.is_set():
            call.type_line("/hangup")
    finally:
        ended.cancel()


async def listed(lines: list[str]) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def _stdin_lines() -> AsyncIterator[str]:
    """Lines of a piped standard input as they arrive. A daemon thread reads: a blocking read cannot
    be cancelled, and a daemon thread never keeps the process alive after the call."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        try:
            for line in iter(sys.stdin.readline, ""):
                loop.call_soon_threadsafe(queue.put_nowait, line)
        except (OSError, ValueError):  # closed stream
            pass
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="stdin-lines", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line


def _context(loaded: LoadResult, from_number: str, name: str, to_number: str) -> CallContext:
    """The call's identity; a fetched document's call_id is kept for every SWAIG request."""
    context = CallContext(caller_id_num=from_number, caller_id_name=name, to_number=to_number)
    if loaded.call is not None:
        context.call_id = loaded.call.call_id
    context.document_host = loaded.origin_host
    return context


async def _until_heard(runner: CallRunner, limit: float = 5.0) -> None:
    """Wait (briefly) until the agent has taken up the line just typed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline and not runner.ended.is_set():
        session = runner.session
        if session is not None and session.busy:
            return
        await asyncio.sleep(0.01)


def load_agent(source: str, console: Console, call: CallInfo | None = None) -> LoadResult:
    try:
        loaded = load_document(source, call=call)
    except DocumentError as exc:
        for issue in exc.issues:
            console.print(f"[red]error[/] {issue}")
        raise typer.Exit(1) from exc
    for warning in loaded.warnings:
        console.print(f"[yellow]warning[/] {warning}")
    # Start-up and the agent document are loaded: keep them out of every later collection.
    gc_tuning.tune()
    gc_tuning.settle()
    return loaded


async def converse(
    loaded: LoadResult,
    console: Console,
    from_number: str,
    to_number: str,
    name: str,
    lines: AsyncIterator[str] | None,
) -> CallOutcome:
    clock = SystemClock()
    switch = ConsoleSwitch(console)
    call = ConsoleCall(
        console,
        switch=switch,
        clock=clock,
        from_number=from_number,
        to_number=to_number,
        caller_name=name,
        read_input=lines is None,
    )
    if lines is None:
        call.install_sigint()
        console.print(f"[dim]{HELP}[/]")
    env = dict(os.environ)
    models = ModelPool(env, clock)  # the same models as `serve`
    model_for = models.model_for

    # Opened off the event loop; an unusable store (locked, read-only, corrupt, unreachable) does
    # not stop the call: its record waits in the spool.
    store = await AsyncStore.open(env.get("CALLGATE_DB") or None, env, warn=_warner(console))
    # The guarded transport resolves, checks and pins what the document's requests connect to.
    async with guarded_client() as http:
        # Post-call work and reports earlier runs left pending go on while this call runs.
        worker = asyncio.create_task(deliver_in_background(store, http, clock, model_for, env))
        setup = CallSetup(
            document=loaded.document,
            call=call,
            clock=clock,
            http=http,
            model_for=model_for,
            context=_context(loaded, from_number, name, to_number),
            switch=switch,
            env=env,
            recall=store.recall_conversation,
            # A crash ends the call with an apology and `pipeline-error`, and the call is recorded.
            contain_crashes=True,
        )
        runner = CallRunner(setup)
        task = asyncio.create_task(runner.run())
        if lines is not None:
            await _type_lines(runner, call, lines)
        try:
            outcome = await task
            await _record(runner, PostCallServices(store, http, clock, model_for, env), console)
        except ModelError as exc:  # the model could not even be set up
            console.print(f"[red]model error:[/] {escape(redact(str(exc)))}")
            raise typer.Exit(1) from exc
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            await models.aclose()
            await store.aclose()
    console.rule(f"call ended: [bold]{outcome.ended_reason}[/]")
    return outcome


def _warner(console: Console) -> Callable[[str], None]:
    def warn(message: str) -> None:
        console.print(f"[yellow]warning[/] {escape(redact(message))}")

    return warn


async def _record(runner: CallRunner, services: PostCallServices, console: Console) -> None:
    try:
        record, status = await finish_live_call(runner, services)
    except (StoreError, OSError) as exc:  # neither the store nor the spool could take it
        console.print(f"[red]error[/] the call was not recorded: {escape(redact(str(exc)))}")
        return
    if status == SPOOLED:
        console.print(
            f"[dim]call spooled: {record.call_id} — recorded (and its report sent) once the store "
            "is usable again (any `callgate calls` command imports it)[/]"
        )
        return
    shown = {None: "", "delivered": ", report delivered", "failed": ", [red]report failed[/]"}.get(
        status, ", report pending (`callgate calls deliver` sends it)"
    )
    console.print(
        f"[dim]call recorded: {record.call_id}{shown} — `callgate calls show {record.call_id[:8]}`[/]"
    )
