"""The Pipecat side of `vs_pipecat.py`: N Pipecat 1.14 pipelines doing callgate's text-only work.

Runs in the scratch virtualenv `vs_pipecat.py` installs (never in callgate's own), one process per
run; prints one `Result` as JSON. Each call is one pipeline run the way a Pipecat bot session runs
it (`WorkerRunner(handle_sigint=False)` + `add_workers(PipelineWorker)` + `run()`, one runner per
call):

    PipelineWorker(Pipeline([pair.user(), OpenAILLMService(base_url=…), Sink, pair.assistant()]),
                   cancel_on_idle_timeout=False)

with `ExternalUserTurnStrategies` (the default strategies load an ONNX turn model per pipeline).
A turn is `LLMMessagesAppendFrame([user message], run_llm=True)`, the frame Pipecat's own RTVI
`send-text` pushes; every 10 turns `LLMMessagesUpdateFrame([])` resets the context. (b) is the
sink receiving each `LLMTextFrame` − the server's write of that chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import random
import sys
import time
from typing import Any

from bench_common import (
    RESET_EVERY,
    SYSTEM_PROMPT,
    GcPauses,
    Result,
    Turns,
    cpu_seconds,
    fetch_stamps,
    load_average,
    rss_kb,
    think_time,
    user_text,
)
from fake_llm import REPLY_CHUNKS
from loguru import logger
from pipecat.frames.frames import (
    LLMFullResponseEndFrame,
    LLMMessagesAppendFrame,
    LLMMessagesUpdateFrame,
    LLMTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.turns.user_turn_strategies import ExternalUserTurnStrategies
from pipecat.workers.runner import WorkerRunner

CHUNK_INDEX = {text: index for index, text in enumerate(REPLY_CHUNKS)}


class Sink(FrameProcessor):
    """Stamps every text frame of the reply; marks the end of each reply."""

    def __init__(self, turns: Turns) -> None:
        super().__init__()
        self.turns = turns
        self.tag = ""
        self.seen = 0
        self.reply_done = asyncio.Event()

    async def process_frame(self, frame: Any, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMTextFrame):
            heard = time.monotonic_ns()
            index = CHUNK_INDEX.get(frame.text, self.seen)
            self.seen += 1
            self.turns.heard.append((self.tag, index, heard))
        elif isinstance(frame, LLMFullResponseEndFrame):
            self.reply_done.set()
        await self.push_frame(frame, direction)


async def run_calls(base_url: str, calls: int, seconds: float, seed: int, lean: bool) -> Result:
    result = Result(framework="pipecat 1.14" + (" lean" if lean else ""), calls=calls)
    result.base_rss_mb = rss_kb() / 1024
    turns = Turns()
    rng = random.Random(seed)
    workers: list[PipelineWorker] = []
    sinks: list[Sink] = []
    runners: list[WorkerRunner] = []
    run_tasks: list[asyncio.Task[Any]] = []
    started: list[asyncio.Event] = []
    tasks_before = len(asyncio.all_tasks())

    async def start(index: int) -> None:
        context = LLMContext()
        pair = LLMContextAggregatorPair(
            context, user_params=LLMUserAggregatorParams(user_turn_strategies=ExternalUserTurnStrategies())
        )
        llm = OpenAILLMService(
            base_url=base_url,
            api_key="bench-key",
            settings=OpenAILLMService.Settings(model="bench", system_instruction=SYSTEM_PROMPT),
        )
        sink = Sink(turns)
        options: dict[str, Any] = {"cancel_on_idle_timeout": False}
        if lean:
            options.update(enable_rtvi=False, enable_turn_tracking=False, idle_timeout_secs=None)
        worker = PipelineWorker(Pipeline([pair.user(), llm, sink, pair.assistant()]), **options)
        ready = asyncio.Event()

        @worker.event_handler("on_pipeline_started")
        async def on_started(_worker: Any, _frame: Any) -> None:
            ready.set()

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        run_tasks.append(asyncio.create_task(runner.run()))
        workers.append(worker)
        sinks.append(sink)
        runners.append(runner)
        started.append(ready)

    setup_started = time.perf_counter()
    await start(0)
    await started[0].wait()
    gc.collect()
    rss_one = rss_kb()
    for index in range(1, calls):
        await start(index)
    for ready in started:
        await ready.wait()
    await asyncio.sleep(0.2)
    result.setup_ms_per_call = (time.perf_counter() - setup_started - 0.2) * 1000 / calls
    gc.collect()
    if calls > 1:
        result.kb_per_idle_call = (rss_kb() - rss_one) / (calls - 1)
    result.tasks_per_call = (len(asyncio.all_tasks()) - tasks_before) / calls
    idle_cpu = time.process_time()
    await asyncio.sleep(2.0)
    result.idle_cpu_percent = (time.process_time() - idle_cpu) / 2.0 * 100

    pauses = GcPauses()
    deadline = time.monotonic() + seconds

    async def converse(index: int) -> None:
        worker = workers[index]
        sink = sinks[index]
        call_rng = random.Random(rng.random())
        await asyncio.sleep(call_rng.uniform(0, 1.5))
        number = 0
        while time.monotonic() < deadline:
            if number % RESET_EVERY == 0 and number:
                await worker.queue_frame(LLMMessagesUpdateFrame([]))
            number += 1
            sink.tag = f"t{index}.{number}"
            sink.seen = 0
            sink.reply_done.clear()
            turns.pushed[sink.tag] = time.monotonic_ns()
            message = {"role": "user", "content": user_text(sink.tag)}
            await worker.queue_frame(LLMMessagesAppendFrame([message], run_llm=True))
            try:
                await asyncio.wait_for(sink.reply_done.wait(), 30)
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

    for runner in runners:
        await runner.cancel()
    _done, pending = await asyncio.wait(run_tasks, timeout=60)
    if pending:
        result.notes.append(f"{len(pending)} pipelines did not stop")
    turns.score(fetch_stamps(base_url), result)
    result.errors = turns.errors
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--lean", action="store_true", help="no RTVI, turn tracking or idle monitor")
    args = parser.parse_args()
    logger.remove()  # Pipecat logs every frame route at DEBUG: not part of the work measured
    logger.add(sys.stderr, level="WARNING")
    logging.getLogger().setLevel(logging.WARNING)
    result = asyncio.run(run_calls(args.base_url, args.calls, args.seconds, args.seed, args.lean))
    print(result.to_json())


if __name__ == "__main__":
    main()
