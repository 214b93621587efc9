"""callgate and Pipecat side by side: the same text-only turns, the same server, the same load.

    .venv/bin/python benchmarks/vs_pipecat.py                 # N = 1, 20, 100, 500; or: make bench
    .venv/bin/python benchmarks/vs_pipecat.py --calls 100 --repeats 3 --seconds 30

Installs Pipecat (`PIPECAT`, pinned) and what its OpenAI service needs into a scratch virtualenv,
`.bench-venv/` (git-ignored; never a callgate dependency), once. Then, for every N and repeat, runs
Pipecat (`pipecat_side.py`, in that virtualenv) and callgate (`turn_overhead.py`) one after the
other, alternating which goes first, each in a fresh process against a fresh `fake_llm.py`, and
prints one Markdown table with a row per run (figures defined in `bench_common.py`).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

from bench_common import HERE, fake_server, load_average, run_side, summarise, table

PIPECAT = "pipecat-ai[openai]==1.14.0"
VENV = HERE.parent / ".bench-venv"


def pipecat_python() -> str:
    """The scratch virtualenv's python, with Pipecat installed (once; a stamp file remembers)."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    if stamp.exists() and stamp.read_text() == PIPECAT:
        return str(python)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    print(f"installing {PIPECAT} into {VENV} (once)", file=sys.stderr)
    subprocess.run([str(python), "-m", "pip", "install", "-q", PIPECAT], check=True)
    stamp.write_text(PIPECAT)
    return str(python)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {platform.system()}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", default="1,20,100,500", help="comma-separated N (concurrent calls)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each load phase")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each framework per N")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--lean", action="store_true", help="Pipecat without RTVI, turn tracking, idle monitor"
    )
    args = parser.parse_args(argv)
    counts = [int(part) for part in str(args.calls).split(",") if part.strip()]
    python = pipecat_python()
    timeout = args.seconds * 4 + 300
    print(f"machine: {machine()}; 1-min load at start {load_average():.2f}", file=sys.stderr)
    summaries = []
    for calls in counts:
        for repeat in range(args.repeats):
            seed = str(args.seed + repeat)
            common = ["--calls", str(calls), "--seconds", str(args.seconds), "--seed", seed]
            pipecat = [python, str(HERE / "pipecat_side.py"), *common, *(["--lean"] if args.lean else [])]
            callgate = [sys.executable, str(HERE / "turn_overhead.py"), *common]
            order = [pipecat, callgate] if repeat % 2 == 0 else [callgate, pipecat]
            for command in order:
                with fake_server() as base_url:
                    started = time.perf_counter()
                    summary = summarise(run_side([*command, "--base-url", base_url], timeout))
                name, took = summary["framework"], time.perf_counter() - started
                print(f"{name} N={calls} seed={seed}: {took:.0f} s", file=sys.stderr)
                for note in summary["notes"]:
                    print(f"  note: {note}", file=sys.stderr)
                if summary["gc_detail"]:
                    print(f"  gc: {summary['gc_detail']}", file=sys.stderr)
                print(table([summary]).splitlines()[-1], file=sys.stderr)  # as it goes
                summaries.append(summary)
    print(table(summaries))


if __name__ == "__main__":
    main()
