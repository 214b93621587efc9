"""`callgate test PATH…`: scenario files run on the sim channel."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from callgate.scenario.command import run_tests


def test(
    paths: Annotated[list[Path], typer.Argument(help="Scenario files or folders of them.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print a machine-readable report.")] = False,
) -> None:
    """Run scenario files against their agents on the sim channel (virtual time, scripted model)."""
    console = Console(highlight=False, soft_wrap=False, width=max(Console().width, 100))
    raise typer.Exit(run_tests(paths, json_output=json_output, console=console))
