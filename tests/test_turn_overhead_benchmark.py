"""The turn-overhead benchmark drives real calls through the engine and prints its table (speed itself
is never asserted): every turn is answered, and every call ends as the caller's hang-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "turn_overhead.py"


def test_two_calls_take_turns_and_end_cleanly() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--calls", "2", "--seconds", "1.5", "--idle-seconds", "0.1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=SCRIPT.parent,
    )
    rows = [line for line in done.stdout.splitlines() if line.startswith("| callgate |")]
    assert len(rows) == 1, done.stdout
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert cells[1] == "2"
    turns = cells[2]
    assert turns.isdigit() and int(turns) >= 2, turns  # no "(n err)": every turn got its reply
    # (a) and (b) were matched with the server's stamps for every turn.
    assert "–" not in cells[3] and "–" not in cells[4], cells
    assert "note" not in done.stderr, done.stderr  # no call ended otherwise, no task left behind
