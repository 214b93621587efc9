"""What both sides of the turn-overhead benchmark share (standard library only: the Pipecat side
imports it from its own virtualenv).

The load profile (method of the earlier Pipecat comparison): N calls in one process; every call
starts at a random phase, then waits a uniform 0.5–1.5 s think time between turns; the context is
reset every 10 turns, so every N sees the same spread of context lengths (2–20 messages).

Figures:
- (a) user text → first request byte at the server (server stamp − client stamp, both
  CLOCK_MONOTONIC);
- (b) server write of the chunk that completes a sentence → the channel's `say()` (callgate) / the
  sink receiving that chunk's text frame (Pipecat, per chunk);
- CPU per turn: `os.times()` user+system of the process over the load phase ÷ turns;
- kB per idle call: VmRSS after `gc.collect()`, (RSS_N − RSS_1) / (N − 1), calls started and idle;
- tasks per idle call, idle CPU %, GC pauses during the load phase (`gc.callbacks`).
"""

from __future__ import annotations

import gc
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
THINK = (0.5, 1.5)
RESET_EVERY = 10
SYSTEM_PROMPT = "You are a helpful phone assistant for a bakery. Keep every answer short."


def user_text(tag: str) -> str:
    """The caller's words for one turn; the tag lets the server stamp this request."""
    return f"I would like to ask about my order, please. [{tag}]"


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


class GcPauses:
    """Collector pauses seen through `gc.callbacks` while `recording`."""

    def __init__(self) -> None:
        self.pauses_ms: list[float] = []
        self.by_generation: dict[int, float] = {}  # the longest pause of each generation
        self.full = 0
        self.cpu_max_ms = 0.0  # the longest pause in CPU time (the rest of a pause is other processes' turn)
        self._started = 0
        self._cpu_started = 0
        self.recording = False
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
            self._cpu_started = time.thread_time_ns()
        elif self.recording:
            pause = (time.perf_counter_ns() - self._started) / 1e6
            self.cpu_max_ms = max(self.cpu_max_ms, (time.thread_time_ns() - self._cpu_started) / 1e6)
            self.pauses_ms.append(pause)
            generation = int(info.get("generation", 0))
            self.by_generation[generation] = max(self.by_generation.get(generation, 0.0), pause)
            if generation == 2:
                self.full += 1


@dataclass
class Result:
    """One run of one framework at one N (printed as JSON by each side)."""

    framework: str
    calls: int
    turns: int = 0
    errors: int = 0
    a_ms: list[float] = field(default_factory=list)
    b_ms: list[float] = field(default_factory=list)
    b_first_ms: list[float] = field(default_factory=list)  # the first sentence / first chunk only
    cpu_ms_per_turn: float = 0.0
    load_seconds: float = 0.0
    cpu_percent: float = 0.0
    base_rss_mb: float = 0.0
    kb_per_idle_call: float | None = None
    tasks_per_call: float = 0.0
    idle_cpu_percent: float = 0.0
    setup_ms_per_call: float = 0.0
    gc_pauses_ms: list[float] = field(default_factory=list)
    gc_full: int = 0
    load_start: float = 0.0
    load_end: float = 0.0
    notes: list[str] = field(default_factory=list)  # problems: a turn without reply, a call ending wrong
    gc_detail: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "framework": self.framework,
            "calls": self.calls,
            "turns": self.turns,
            "errors": self.errors,
            "a_p50": percentile(self.a_ms, 50),
            "a_p99": percentile(self.a_ms, 99),
            "b_p50": percentile(self.b_ms, 50),
            "b_p99": percentile(self.b_ms, 99),
            "b1_p50": percentile(self.b_first_ms, 50),
            "b1_p99": percentile(self.b_first_ms, 99),
            "cpu_ms_per_turn": self.cpu_ms_per_turn,
            "turns_per_s": self.turns / self.load_seconds if self.load_seconds else 0.0,
            "cpu_percent": self.cpu_percent,
            "base_rss_mb": self.base_rss_mb,
            "kb_per_idle_call": self.kb_per_idle_call,
            "tasks_per_call": self.tasks_per_call,
            "idle_cpu_percent": self.idle_cpu_percent,
            "setup_ms_per_call": self.setup_ms_per_call,
            "gc_pauses": len(self.gc_pauses_ms),
            "gc_full": self.gc_full,
            "gc_max_ms": max(self.gc_pauses_ms, default=0.0),
            "load_start": self.load_start,
            "load_end": self.load_end,
            "notes": self.notes,
            "gc_detail": self.gc_detail,
        }

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def load_average() -> float:
    return os.getloadavg()[0]


@contextmanager
def fake_server(python: str = sys.executable, close: bool = False) -> Iterator[str]:
    """The loopback model server in its own process; yields its base URL (`…/v1`)."""
    command = [python, str(HERE / "fake_llm.py")]
    if close:
        command.append("--close")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the fake model server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def fetch_stamps(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url + "/stamps", timeout=30) as response:
        data: dict[str, Any] = json.loads(response.read())
        return data


class Turns:
    """The client-side stamps of every turn, matched with the server's afterwards."""

    def __init__(self) -> None:
        self.pushed: dict[str, int] = {}  # tag -> ns when the user text was handed to the engine
        self.heard: list[tuple[str, int, int]] = []  # (tag, chunk index, ns when it reached the sink)
        self.done = 0
        self.errors = 0

    def score(self, stamps: dict[str, Any], result: Result, first_chunk: int = 0) -> None:
        for tag, pushed in self.pushed.items():
            server = stamps.get(tag)
            if server is None:
                result.notes.append(f"no request reached the server for {tag}")
                continue
            result.a_ms.append((server["first_byte"] - pushed) / 1e6)
        for tag, index, heard in self.heard:
            server = stamps.get(tag)
            if server is None or index >= len(server["writes"]):
                continue
            delay = (heard - server["writes"][index]) / 1e6
            result.b_ms.append(delay)
            if index == first_chunk:
                result.b_first_ms.append(delay)


def think_time(rng: random.Random) -> float:
    return rng.uniform(*THINK)


def run_side(command: list[str], timeout: float) -> dict[str, Any]:
    """Run one side of the benchmark in a fresh process; its last stdout line is a Result as JSON."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    data: dict[str, Any] = json.loads(lines[-1])
    return data


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    result = Result(**{k: v for k, v in raw.items() if k in Result.__dataclass_fields__})
    return result.summary()


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:  # None or NaN
        return "–"
    return f"{value:,.{digits}f}"


COLUMNS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("framework", lambda s: str(s["framework"])),
    ("N", lambda s: str(s["calls"])),
    ("turns", lambda s: f"{s['turns']}" + (f" ({s['errors']} err)" if s["errors"] else "")),
    ("(a) p50 / p99 ms", lambda s: f"{fmt(s['a_p50'], 2)} / {fmt(s['a_p99'], 2)}"),
    ("(b) p50 / p99 ms", lambda s: f"{fmt(s['b_p50'], 2)} / {fmt(s['b_p99'], 2)}"),
    ("(b) 1st p50 / p99 ms", lambda s: f"{fmt(s['b1_p50'], 2)} / {fmt(s['b1_p99'], 2)}"),
    ("CPU ms/turn", lambda s: fmt(s["cpu_ms_per_turn"], 2)),
    ("turns/s (CPU %)", lambda s: f"{fmt(s['turns_per_s'])} ({fmt(s['cpu_percent'], 0)} %)"),
    ("kB/idle call", lambda s: fmt(s["kb_per_idle_call"], 0)),
    ("base RSS MB", lambda s: fmt(s["base_rss_mb"])),
    ("tasks/call", lambda s: fmt(s["tasks_per_call"], 1)),
    ("idle CPU %", lambda s: fmt(s["idle_cpu_percent"], 2)),
    ("set-up ms/call", lambda s: fmt(s["setup_ms_per_call"], 2)),
    ("GC pauses (full) max ms", lambda s: f"{s['gc_pauses']} ({s['gc_full']}) {fmt(s['gc_max_ms'], 1)}"),
    ("load 1-min", lambda s: f"{fmt(s['load_start'], 2)}→{fmt(s['load_end'], 2)}"),
]


def table(summaries: list[dict[str, Any]]) -> str:
    """A Markdown table, one row per run."""
    head = "| " + " | ".join(name for name, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    rows = ["| " + " | ".join(cell(s) for _, cell in COLUMNS) + " |" for s in summaries]
    return "\n".join([head, rule, *rows])
