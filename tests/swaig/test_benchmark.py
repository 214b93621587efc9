"""The data_map benchmark entry runs and prints its line (its speed is never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "swaig_eval.py"


def test_data_map_benchmark_prints_a_rate() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--seconds", "0.01"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = re.search(r"^expression-only data_map evaluations: (\d+)/s$", done.stdout, re.MULTILINE)
    assert found is not None, done.stdout
    assert int(found.group(1)) > 0
