"""The `callgate` command line: the top layer (DESIGN §2), above runtime, scenario and records.

Each command lives in its own module here; `calls` stays with the records it shows
(`callgate.records.commands`). `main()` is the console-script entry point.
"""

from __future__ import annotations

import typer

from callgate.cli.chat import chat
from callgate.cli.dashboard import dashboard
from callgate.cli.demo import demo
from callgate.cli.serve import serve
from callgate.cli.test import test
from callgate.cli.validate import EXIT_INVALID, EXIT_OK, validate
from callgate.records import commands as records_commands
from callgate.redact import install_log_redaction, install_traceback_redaction, register_env_secrets

__all__ = ["EXIT_INVALID", "EXIT_OK", "app", "main"]

app = typer.Typer(
    name="callgate",
    help="Self-hosted runtime for AI phone agents written as SignalWire SWML documents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Self-hosted runtime for AI phone agents written as SignalWire SWML documents."""
    # A callback keeps every command a sub-command, whatever their number. Logs never carry
    # credentials, whichever command writes them.
    install_log_redaction()
    register_env_secrets()  # an API key echoed back by an endpoint is masked like any credential


app.command("validate")(validate)
app.command("test")(test)
app.command("chat")(chat)
app.command("demo")(demo)
app.command("serve")(serve)
app.command("dashboard")(dashboard)
records_commands.register(app)


def main() -> None:
    """Console-script entry point."""
    install_traceback_redaction()  # not even a crash prints a credential
    app()
