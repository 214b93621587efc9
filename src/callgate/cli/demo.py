"""`callgate demo`: a conversation with the packaged demo agent on the embedded model."""

from __future__ import annotations

import asyncio
import os
import sys

import typer
from rich.console import Console

from callgate.cli.chat import converse, listed, load_agent
from callgate.demo import SCRIPTED_CALLER, agent_path


def demo() -> None:
    """A conversation with the demo agent on the embedded model — no account, no key."""
    console = Console(highlight=False)
    console.rule("[bold]callgate demo[/] — Rosa's Bakery, on the embedded model")
    loaded = load_agent(str(agent_path()), console)
    if not (os.environ.get("CALLGATE_LLM_URL") or os.environ.get("OPENAI_API_KEY")):
        console.print(
            "[dim]The embedded model (SmolLM2-135M) is tiny and often talks nonsense; set CALLGATE_LLM_URL"
            " (and OPENAI_API_KEY) to any OpenAI-compatible endpoint for a real conversation.[/]"
        )
    script = None
    if not sys.stdin.isatty():
        console.print("[dim]No terminal on standard input: the caller's lines are scripted.[/]")
        script = listed(SCRIPTED_CALLER)
    outcome = asyncio.run(
        converse(loaded, console, "+15550100000", "+15550199999", "Demo caller", lines=script)
    )
    raise typer.Exit(0 if outcome.ended_reason != "pipeline-error" else 1)
