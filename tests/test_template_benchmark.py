"""The benchmark script runs and prints `name: N/s` per entry (speed itself is never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "swaig_eval.py"
LINE = re.compile(r"^(?P<name>[^:]+): (?P<rate>\d+)/s$")


def _run(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, check=True, cwd=SCRIPT.parent
    )
    return done.stdout.splitlines()


def test_script_prints_template_expansions_per_second() -> None:
    lines = _run(str(SCRIPT), "--seconds", "0.01")
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    names = [m.group("name") for m in matches if m]
    assert "template expansions" in names
    assert all(int(m.group("rate")) > 0 for m in matches if m)


def test_an_appended_benchmark_is_printed_too() -> None:
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('swaig_eval', {str(SCRIPT)!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "mod.BENCHMARKS.append(mod.Benchmark('second figure', lambda: 10))\n"
        "mod.main(['--seconds', '0.01'])\n"
    )
    lines = _run("-c", code)
    assert [LINE.match(line).group("name") for line in lines] == [  # type: ignore[union-attr]
        "template expansions",
        "expression-only data_map evaluations",
        "second figure",
    ]


def test_bad_arguments_are_refused() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--seconds", "soon"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "--seconds" in done.stderr
