"""`callgate validate FILE|URL [--json]`: a document's errors and warnings.

Exit codes: 0 valid (warnings allowed); 1 errors; 2 the document is beyond what callgate reads at
all (larger than 1 MB, nested more than 64 levels, YAML aliases expanding past 200,000 values, or a
URL whose whole fetch took longer than `--timeout`), so it was not checked further.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from callgate.redact import redact
from callgate.swml.errors import DocumentError, DocumentLimitError, Issue, Severity
from callgate.swml.fetch import FETCH_TIMEOUT
from callgate.swml.loader import LoadResult, load_document
from callgate.swml.models import AI, Document

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_REFUSED = 2


def validate(
    source: Annotated[str, typer.Argument(help="A SWML document: a YAML/JSON file or an http(s) URL.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the issues as JSON.")] = False,
    timeout: Annotated[
        float, typer.Option(help="Seconds for the whole fetch of a URL (connect, headers and body).")
    ] = FETCH_TIMEOUT,
) -> None:
    """Check a SWML agent document: print its errors and warnings (exit 1 on any error; 2 if it is
    too large, too deeply nested or too slow to fetch to be checked at all).

    Only a document given as a URL is fetched (with SignalWire's POST); the webhooks it names are not.
    """
    result: LoadResult | None = None
    refused = False
    try:
        result = load_document(source, timeout=timeout)
        issues = result.warnings
    except DocumentError as exc:
        issues = exc.issues
        refused = isinstance(exc, DocumentLimitError)
    errors = [issue for issue in issues if issue.severity is Severity.ERROR]
    shown_source = (result.source if result is not None else None) or _shown(source, issues)
    if json_output:
        report = {
            "source": shown_source,
            "valid": not errors,
            "errors": [issue.to_dict() for issue in errors],
            "warnings": [issue.to_dict() for issue in issues if issue.severity is Severity.WARNING],
        }
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_report(Console(soft_wrap=True, highlight=False), shown_source, issues, result)
    raise typer.Exit(EXIT_REFUSED if refused else EXIT_INVALID if errors else EXIT_OK)


def _shown(source: str, issues: list[Issue]) -> str:
    """How to name the source: never with its credentials (`callgate.redact`)."""
    return redact(source)


def _print_report(console: Console, source: str, issues: list[Issue], result: LoadResult | None) -> None:
    for issue in issues:
        style = "bold red" if issue.severity is Severity.ERROR else "yellow"
        console.print(f"[{style}]{issue.severity.value}[/{style}] {escape(str(issue))}")
    errors = sum(1 for issue in issues if issue.severity is Severity.ERROR)
    warnings = len(issues) - errors
    if result is None or errors:
        console.print(
            f"[bold red]invalid[/bold red] {escape(source)}: {_count(errors, 'error')}, "
            + _count(warnings, "warning")
        )
        return
    outline = escape(_outline(result.document))
    console.print(f"[green]valid[/green] {escape(source)}: {_count(warnings, 'warning')}; {outline}")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _outline(document: Document) -> str:
    """One line saying what the document holds: its sections' verbs and the ai verb's functions."""
    parts = []
    for name, verbs in document.sections.items():
        described = []
        for verb in verbs:
            if verb.name == "ai" and isinstance(verb.args, AI):
                functions = len(verb.args.SWAIG.functions)
                described.append(f"ai ({_count(functions, 'function')})")
            else:
                described.append(verb.name)
        parts.append(f"{name}: {', '.join(described) or '(empty)'}")
    return "; ".join(parts)
