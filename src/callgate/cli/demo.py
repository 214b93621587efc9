"""`callgate demo`: the packaged demo agent answering a real phone call, with no account or key.

By default a scripted caller phones the agent over SIP/RTP on loopback and speaks its lines
(`callgate.cli.demo_call`); at a terminal you may instead call the agent from a softphone, or type
as the caller (`--text`, the console channel).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from callgate.cli.chat import converse, listed, load_agent
from callgate.cli.demo_call import demo_call
from callgate.cli.serve import parse_address, serve_agent
from callgate.demo import SCRIPTED_CALLER, agent_path

SOFTPHONE_SIP = "127.0.0.1:5060"


def demo(
    text: Annotated[bool, typer.Option("--text", help="Type as the caller in the terminal instead.")] = False,
    softphone: Annotated[
        bool, typer.Option("--softphone", help="Serve the agent for your softphone to call (Ctrl-C stops).")
    ] = False,
    sip: Annotated[
        str, typer.Option("--sip", help="With --softphone: the SIP address to listen on.")
    ] = SOFTPHONE_SIP,
) -> None:
    """A phone call with the demo agent (Rosa's Bakery) on the embedded model — no account, no key.

    A scripted caller dials the agent over SIP and speaks through text-to-speech over RTP; the live
    transcript and call events are printed, and the agent hangs up after its goodbye.
    """
    console = Console(highlight=False)
    model = "the embedded model"
    if os.environ.get("CALLGATE_LLM_URL") or os.environ.get("OPENAI_API_KEY"):
        model = "your model endpoint"
    console.rule(f"[bold]callgate demo[/] — Rosa's Bakery, on {model}")
    if not (text or softphone) and sys.stdin.isatty():
        choice = typer.prompt(
            "Enter: a scripted caller phones the agent · s: call it from your softphone"
            " · t: type as the caller",
            default="",
            show_default=False,
        )
        softphone, text = choice.strip().lower().startswith("s"), choice.strip().lower().startswith("t")
    loaded = load_agent(str(agent_path()), console)
    if softphone:
        address = parse_address(sip, "--sip")
        console.print(
            f"Call [bold]sip:rosa@{address}[/] from your softphone (baresip: "
            f"[bold]/dial sip:rosa@{address}[/]; Linphone: type it in the address bar). Ctrl-C stops."
        )
        raise typer.Exit(serve_agent(str(agent_path()), sip=address))
    if text:
        script = None if sys.stdin.isatty() else listed(SCRIPTED_CALLER)
        outcome = asyncio.run(
            converse(loaded, console, "+15550100000", "+15550199999", "Demo caller", lines=script)
        )
        raise typer.Exit(0 if outcome.ended_reason != "pipeline-error" else 1)
    ai = loaded.document.find_ai()
    greeting = ai.params.static_greeting if ai is not None else None
    result = asyncio.run(demo_call(console, loaded, SCRIPTED_CALLER, greeting))
    reason = result.ended_reason or "not recorded"
    who = "the agent hung up" if result.agent_hung_up else "the caller hung up"
    console.rule(f"call ended: [bold]{escape(reason)}[/] ({who})")
    if result.call_id:
        console.print(f"[dim]call recorded: `callgate calls show {escape(result.call_id[:12])}`[/]")
    raise typer.Exit(0 if result.agent_hung_up and reason != "pipeline-error" else 1)
