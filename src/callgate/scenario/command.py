"""`callgate test PATH… [--json]`: run scenario files and report; the exit code says how it went.

Exit codes: 0 every scenario passed; 1 a scenario failed; 2 bad input — a path that does not exist,
no scenario found, or a malformed scenario file (reported as a failed scenario with its error).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from callgate.scenario.report import ScenarioResult, print_json, print_result, print_summary
from callgate.scenario.runner import CallUnderTestFactory, discover, run_scenario_file

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def run_tests(
    paths: list[Path],
    *,
    json_output: bool,
    console: Console,
    factory: CallUnderTestFactory | None = None,
) -> int:
    """Discover and run the scenarios under `paths`, print the report, return the exit code."""
    try:
        files = discover(paths)
    except FileNotFoundError as exc:
        _complain(console, json_output, f"no such file or folder: {exc.args[0]}")
        return EXIT_BAD_INPUT
    if not files:
        shown = ", ".join(str(p) for p in paths) or "(no paths given)"
        _complain(console, json_output, f"no scenario files found in {shown}")
        return EXIT_BAD_INPUT

    results: list[ScenarioResult] = []
    for file in files:
        result = run_scenario_file(file, factory=factory)
        results.append(result)
        if not json_output:
            print_result(result, console)  # as each finishes: a long run shows progress
    if json_output:
        print_json(results, console)
    else:
        print_summary(results, console)

    if any(r.malformed for r in results):
        return EXIT_BAD_INPUT
    return EXIT_PASSED if all(r.passed for r in results) else EXIT_FAILED


def _complain(console: Console, json_output: bool, message: str) -> None:
    if json_output:
        # Keep stdout parseable: an empty report, and the reason on stderr.
        console.print("[]", markup=False, highlight=False)
        Console(stderr=True).print(f"error: {escape(message)}")
    else:
        console.print(f"[red]error:[/red] {escape(message)}")
