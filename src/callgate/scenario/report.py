"""How scenario results are shown: a rich console report, or a JSON document with `--json`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from callgate.redact import redact, redact_data
from callgate.timeline import CallOutcome


@dataclass
class ScenarioResult:
    """One scenario's result. `outcome` is None when the scenario could not run (a bad file)."""

    file: Path
    name: str
    failures: list[str] = field(default_factory=list)
    outcome: CallOutcome | None = None
    duration: float = 0.0  # virtual seconds the call lasted
    error: str | None = None  # the file was malformed or the run crashed
    malformed: bool = False  # the file could not be read as a scenario (bad input)

    @property
    def passed(self) -> bool:
        return not self.failures and self.error is None

    @property
    def all_failures(self) -> list[str]:
        return ([self.error] if self.error else []) + self.failures


def summary_line(results: list[ScenarioResult]) -> str:
    passed = sum(1 for r in results if r.passed)
    return f"{passed} passed, {len(results) - passed} failed"


def timeline_table(outcome: CallOutcome) -> Table:
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("t", justify="right", style="cyan", no_wrap=True)
    table.add_column("leg", style="magenta", no_wrap=True)
    table.add_column("event", style="bold", no_wrap=True)
    table.add_column("details", overflow="fold")
    for event in outcome.timeline.events:
        details = ", ".join(f"{key}={value!r}" for key, value in event.data.items())
        table.add_row(f"{event.t:.3f}s", event.leg, event.kind, escape(details))
    return table


def print_result(result: ScenarioResult, console: Console) -> None:
    """One scenario's line; for a failure, its failure lines and its timeline."""
    mark = "[green]✓[/green]" if result.passed else "[red]✗[/red]"
    console.print(f"{mark} {escape(result.name)} [dim]({result.duration:.1f}s virtual)[/dim]")
    if result.passed:
        return
    console.print(f"  [dim]{escape(str(result.file))}[/dim]")
    for line in result.all_failures:
        for part in redact(line).splitlines() or [""]:
            console.print(f"  [red]•[/red] {escape(part)}")
    if result.outcome is not None and result.outcome.timeline.events:
        console.print(timeline_table(result.outcome))


def print_summary(results: list[ScenarioResult], console: Console) -> None:
    console.print(summary_line(results), markup=False, highlight=False)


def print_console(results: list[ScenarioResult], console: Console) -> None:
    """A line per scenario, failures with their timeline, then `N passed, M failed`."""
    for result in results:
        print_result(result, console)
    print_summary(results, console)


def _jsonable(value: Any) -> Any:
    """Timeline data may hold anything; JSON gets it as-is when it can, as text otherwise."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def result_json(result: ScenarioResult) -> dict[str, Any]:
    """One scenario's report, credentials masked (`callgate.redact`): a failure message or a
    recorded request may quote a URL's `?token=` or a body's password."""
    outcome = result.outcome or CallOutcome()
    report: dict[str, Any] = {
        "file": str(result.file),
        "name": result.name,
        "passed": result.passed,
        "malformed": result.malformed,
        "failures": result.all_failures,
        "duration": result.duration,
        "ended_reason": outcome.ended_reason,
        "hangup_at": outcome.hangup_at,
        "transcript": outcome.transcript("caller"),
        "utterances": [asdict(u) for u in outcome.utterances],
        "timeline": [
            {"t": e.t, "leg": e.leg, "kind": e.kind, "data": {k: _jsonable(v) for k, v in e.data.items()}}
            for e in outcome.timeline.events
        ],
        "functions": [_jsonable(asdict(f)) for f in outcome.functions],
        "http": [_jsonable(asdict(h)) for h in outcome.http],
        "transfers": [asdict(t) for t in outcome.transfers],
    }
    return dict(redact_data(report))


def report_json(results: list[ScenarioResult]) -> str:
    """The machine-readable report: a JSON list with one object per scenario."""
    return json.dumps([result_json(r) for r in results], indent=2, ensure_ascii=False)


def print_json(results: list[ScenarioResult], console: Console) -> None:
    # Plain text out: no markup, highlighting or wrapping may touch the JSON.
    console.print(report_json(results), markup=False, highlight=False, soft_wrap=True)
