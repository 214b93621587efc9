"""What callgate's engine adds to every turn: N concurrent calls through the real engine.

    .venv/bin/python benchmarks/turn_overhead.py                       # N = 1, 20, 100, 500
    .venv/bin/python benchmarks/turn_overhead.py --calls 100 --seconds 30

Each call is a `CallRunner` (SWML interpreter, agent session, call control, silence watch) on a
minimal in-memory channel (`BenchCall`, a `telephony.base.Call` whose `say()` only stamps the
time), its model the factory's OpenAI-compatible client talking to `fake_llm.py` on loopback, in its
own process. The load profile and the figures are described in `bench_common.py`; every N runs in
a fresh process and the script prints one Markdown table row per run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import random
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from bench_common import (
    RESET_EVERY,
    SYSTEM_PROMPT,
    GcPauses,
    Result,
    Turns,
    cpu_seconds,
    fake_server,
    fetch_stamps,
    load_average,
    rss_kb,
    run_side,
    summarise,
    table,
    think_time,
    user_text,
)
from fake_llm import SENTENCE_END_CHUNKS

DOCUMENT: dict[str, Any] = {
    "version": "1.0.0",
    "sections": {
        "main": [
            {"answer": {}},
            {
                "ai": {
                    "prompt": {"text": SYSTEM_PROMPT},
                    # No opening request (calls idle until the caller speaks); the reply's IMS markup
                    # is spoken as text, so a call lives for many turns (Pipecat does the same).
                    "params": {"wait_for_user": True, "text_commands": False},
                }
            },
        ]
    },
}


class BenchCall:
    """A caller leg in memory: the driver puts caller speech in, `say()` stamps what reaches it."""

    def __init__(self, call_id: str, turns: Turns) -> None:
        from callgate.channels.legs import EventFeed

        self._call_id = call_id
        self._turns = turns
        self._feed = EventFeed()
        self._ended = False
        self.tag = ""
        self.reply_done = asyncio.Event()
        self.ended_reason: str | None = None

    # identity
    @property
    def call_id(self) -> str:
        return self._call_id

    @property
    def from_number(self) -> str:
        return "+15550100000"

    @property
    def to_number(self) -> str:
        return "+15550199999"

    @property
    def caller_name(self) -> str:
        return "Bench"

    @property
    def ended(self) -> bool:
        return self._ended

    # the caller side
    def caller_says(self, text: str) -> None:
        from callgate.telephony.base import CallerSpeech

        self._feed.put(CallerSpeech(text))

    def caller_hangs_up(self) -> None:
        from callgate.telephony.base import RemoteHangup

        self._feed.put(RemoteHangup())

    # the Call protocol
    async def answer(self) -> None:
        return None

    async def say(self, text: str) -> None:
        heard = time.monotonic_ns()
        if self._ended:
            from callgate.telephony.base import CallEnded

            raise CallEnded("the call has ended")
        index = SENTENCE_END_CHUNKS.get(text)
        if index is None:
            self._turns.errors += 1
            return
        self._turns.heard.append((self.tag, index, heard))
        if index != 0:  # the reply's last sentence
            self.reply_done.set()

    async def play(self, source: str, loop: bool = False) -> Any:
        raise NotImplementedError("the benchmark plays nothing")

    async def hold(self) -> None:
        return None

    async def unhold(self) -> None:
        return None

    async def transfer(self, destination: Any) -> None:
        raise NotImplementedError("the benchmark transfers nothing")

    async def hangup(self, reason: str) -> None:
        if not self._ended:
            self._ended = True
            self.ended_reason = reason
            self._feed.close(drop_pending=True)

    async def events(self) -> AsyncIterator[Any]:
        async for event in self._feed:
            yield event
            if type(event).__name__ == "RemoteHangup":
                self._ended = True
                self.ended_reason = "customer-ended-call"
                return


class Engine:
    """How a host wires calls to the engine: the model client from the factory for every call (it
    talks through the process's shared client for the endpoint), one webhook client for the
    process; start-up frozen out of garbage collection (`gc_tuning`)."""

    def __init__(self, base_url: str) -> None:
        from callgate import gc_tuning
        from callgate.http_pool import shared_pool

        self.env = {"CALLGATE_LLM_URL": base_url, "OPENAI_API_KEY": "bench-key"}
        self.pool = shared_pool()
        self.http = self.pool.webhooks()
        self.closers: list[Any] = []
        gc_tuning.tune()
        if os.environ.get("BENCH_GC_THRESHOLDS"):  # experiments: other thresholds than the project's
            gc.set_threshold(*map(int, os.environ["BENCH_GC_THRESHOLDS"].split(",")))
        gc_tuning.settle()

    def setup(self, call: BenchCall) -> Any:
        from callgate.llm.factory import make_model
        from callgate.runtime.call_runner import CallSetup
        from callgate.swaig.context import CallContext
        from callgate.swml.loader import parse_document
        from callgate.telephony.clock import SystemClock

        document = parse_document(DOCUMENT, source="<bench>").document
        clock = SystemClock()

        def model_for(role: str, ai: Any) -> Any:
            model = make_model(ai.params.llm_base_url, ai.params.ai_model, self.env, clock=clock)
            close = getattr(model, "aclose", None)
            if close is not None:
                self.closers.append(close)
            return model

        return CallSetup(
            document=document,
            call=call,
            clock=clock,
            http=self.http,
            model_for=model_for,
            context=CallContext(
                caller_id_num=call.from_number, caller_id_name="Bench", to_number=call.to_number
            ),
            env=self.env,
        )

    async def close(self) -> None:
        for close in self.closers:
            with contextlib.suppress(Exception):
                await close()
        await self.pool.aclose()


async def _wait_idle(runner: Any) -> None:
    while runner.session is None:
        await asyncio.sleep(0.005)


async def run_calls(base_url: str, calls: int, seconds: float, seed: int, idle: float = 2.0) -> Result:
    from callgate.runtime.call_runner import CallRunner

    result = Result(framework="callgate", calls=calls, base_rss_mb=rss_kb() / 1024)
    turns = Turns()
    engine = Engine(base_url)
    rng = random.Random(seed)
    legs: list[BenchCall] = []
    runners: list[Any] = []
    tasks: list[asyncio.Task[Any]] = []
    tasks_before = len(asyncio.all_tasks())

    def start(index: int) -> None:
        leg = BenchCall(f"bench-{index}", turns)
        runner = CallRunner(engine.setup(leg))
        legs.append(leg)
        runners.append(runner)
        tasks.append(asyncio.create_task(runner.run(), name=f"call-{index}"))

    # Set-up: calls started and idle (waiting for the caller); memory and tasks measured there.
    setup_started = time.perf_counter()
    start(0)
    await _wait_idle(runners[0])
    gc.collect()
    rss_one = rss_kb()
    for index in range(1, calls):
        start(index)
    for runner in runners:
        await _wait_idle(runner)
    await asyncio.sleep(0.2)
    result.setup_ms_per_call = (time.perf_counter() - setup_started - 0.2) * 1000 / calls
    gc.collect()
    if calls > 1:
        result.kb_per_idle_call = (rss_kb() - rss_one) / (calls - 1)
    result.tasks_per_call = (len(asyncio.all_tasks()) - tasks_before) / calls
    idle_cpu = time.process_time()
    await asyncio.sleep(idle)
    result.idle_cpu_percent = (time.process_time() - idle_cpu) / idle * 100

    # Load: every call at a random phase, then think 0.5–1.5 s between turns until the time is up.
    pauses = GcPauses()
    deadline = time.monotonic() + seconds

    async def converse(index: int) -> None:
        leg = legs[index]
        runner = runners[index]
        call_rng = random.Random(rng.random())
        await asyncio.sleep(call_rng.uniform(0, 1.5))
        number = 0
        while time.monotonic() < deadline:
            if number % RESET_EVERY == 0 and runner.conversation is not None:
                runner.conversation.messages.clear()
                runner.conversation.raw_log.clear()
            number += 1
            leg.tag = f"t{index}.{number}"
            leg.reply_done.clear()
            turns.pushed[leg.tag] = time.monotonic_ns()
            leg.caller_says(user_text(leg.tag))
            try:
                await asyncio.wait_for(leg.reply_done.wait(), 30)
            except TimeoutError:
                turns.errors += 1
                continue
            turns.done += 1
            await asyncio.sleep(think_time(call_rng))

    result.load_start = load_average()
    pauses.recording = True
    cpu = cpu_seconds()
    wall = time.perf_counter()
    await asyncio.gather(*(converse(index) for index in range(calls)))
    result.load_seconds = time.perf_counter() - wall
    used = cpu_seconds() - cpu
    pauses.recording = False
    result.load_end = load_average()
    result.turns = turns.done
    result.cpu_ms_per_turn = used * 1000 / max(1, turns.done)
    result.cpu_percent = used / result.load_seconds * 100
    result.gc_pauses_ms = pauses.pauses_ms
    result.gc_full = pauses.full
    longest = {gen: round(ms, 1) for gen, ms in pauses.by_generation.items()}
    result.gc_detail = (
        f"longest pause by generation {longest} ms (CPU {pauses.cpu_max_ms:.1f} ms),"
        f" thresholds {gc.get_threshold()}"
    )

    # The caller hangs up every call; each must end as the caller's hang-up, with nothing left over.
    for leg in legs:
        leg.caller_hangs_up()
    outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
    reasons = [getattr(outcome, "ended_reason", repr(outcome)) for outcome in outcomes]
    wrong = [reason for reason in reasons if reason != "customer-ended-call"]
    if wrong:
        result.notes.append(f"{len(wrong)} calls ended otherwise: {sorted(set(map(str, wrong)))[:3]}")
    await engine.close()
    await asyncio.sleep(0.1)
    stuck = len(asyncio.all_tasks()) - 1
    if stuck:
        result.notes.append(f"{stuck} tasks left after the calls ended")
    turns.score(fetch_stamps(base_url), result)
    result.errors = turns.errors
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", default="1,20,100,500", help="comma-separated N (concurrent calls)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the load phase")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--idle-seconds", type=float, default=2.0, help="idle window for idle CPU %%")
    parser.add_argument("--base-url", help="(internal) run one side against this server and print JSON")
    args = parser.parse_args(argv)
    counts = [int(part) for part in str(args.calls).split(",") if part.strip()]
    if args.base_url:
        result = asyncio.run(run_calls(args.base_url, counts[0], args.seconds, args.seed, args.idle_seconds))
        print(result.to_json())
        return
    summaries = []
    for calls in counts:
        with fake_server() as base_url:
            raw = run_side(
                [sys.executable, __file__, "--calls", str(calls), "--seconds", str(args.seconds),
                 "--seed", str(args.seed), "--idle-seconds", str(args.idle_seconds), "--base-url", base_url],
                timeout=args.seconds * 4 + 120,
            )  # fmt: skip
        summary = summarise(raw)
        summaries.append(summary)
        for note in summary["notes"]:
            print(f"note (N={calls}): {note}", file=sys.stderr)
        print(f"gc (N={calls}): {summary['gc_detail']}", file=sys.stderr)
    print(table(summaries))


if __name__ == "__main__":
    main()
