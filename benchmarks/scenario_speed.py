"""How fast the scenario runner drives whole calls: real seconds per scenario and the virtual time
covered, over every example scenario.

    .venv/bin/python benchmarks/scenario_speed.py [--rounds N]

Prints `scenarios: N/s` (whole scenario runs per real second, model server and stubs included),
`virtual speed-up: N x` (virtual call seconds per real second) and the slowest scenario.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from callgate.scenario.runner import run_scenario_file

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "scenarios"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=1, help="how many times to run every scenario")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    paths = sorted(EXAMPLES.glob("*.yaml"))
    run_scenario_file(paths[0])  # warm-up: the first run pays for importing everything
    real_total = 0.0
    virtual_total = 0.0
    slowest = ("", 0.0)
    failed = 0
    for _ in range(args.rounds):
        for path in paths:
            started = time.perf_counter()
            result = run_scenario_file(path)
            elapsed = time.perf_counter() - started
            real_total += elapsed
            virtual_total += result.duration
            failed += not result.passed
            if elapsed > slowest[1]:
                slowest = (path.stem, elapsed)
    runs = len(paths) * args.rounds
    print(f"scenarios: {runs / real_total:.1f}/s ({runs} runs, {real_total:.1f} s real, {failed} failed)")
    print(f"virtual speed-up: {virtual_total / real_total:.0f} x ({virtual_total:.0f} s of calls)")
    print(f"slowest: {slowest[0]} {slowest[1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
