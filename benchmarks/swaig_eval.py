"""Throughput of the SWAIG evaluation hot paths, on one core.

Run: .venv/bin/python benchmarks/swaig_eval.py [--seconds 1.0]

Each entry of BENCHMARKS is a named *round*: a zero-argument function that does a fixed batch
of work and returns how many operations it did. main() repeats each round for the given time,
three times, and prints the best rate as `name: N/s`. Append a Benchmark to add a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from callgate.template import expand


class Benchmark(NamedTuple):
    name: str
    round: Callable[[], int]


# The seed's and SDK's typical templates: webhook URLs, responses, nested lookups, foreach
# items, call variables, modifiers, plus literal-only strings (most action text has no `${`).
TEMPLATES: tuple[str, ...] = (
    "Tell the user: ${array[0].joke}.",
    "https://example.com/v1/${args.type}",
    "${meta_data.table.${lc:args.target}}",
    "I'm sorry, I was unable to transfer your call to ${input.args.target}.",
    "https://example.com/name_bank?name=${lc:args.name}",
    "https://api.weatherapi.com/v1/current.json?key=KEY&q=%{enc:args.location}&aqi=no",
    "${Records[0].secret}",
    "- ${this.title}: ${this.summary}\n",
    "Caller ${caller_id_name} (${caller_id_num}) on call ${call_id}",
    "Weather in ${location.name}: ${current.condition.text}, ${current.temp_f}F",
    "Please stand by while I connect your call.",
    "transferred, the call has ended.",
)

CONTEXT: dict[str, Any] = {
    "args": {"type": "jokes", "target": "Sales", "name": "Ada Lovelace", "location": "New York"},
    "input": {"args": {"target": "Sales", "name": "Ada Lovelace"}},
    "meta_data": {"table": {"support": "+15551230001", "sales": "+15551230002"}},
    "global_data": {"tenant": "acme"},
    "caller_id_num": "+15557654321",
    "caller_id_name": "Ada",
    "call_id": "c2d3e4f5-a6b7-8901-cdef-234567890abc",
    "array": [{"joke": "Why did the scarecrow win an award? He was outstanding in his field."}],
    "Records": [{"secret": "likes tea"}],
    "this": {"title": "Result", "summary": "A short summary."},
    "location": {"name": "New York"},
    "current": {"condition": {"text": "Sunny"}, "temp_f": 71.6},
}


def template_round() -> int:
    """100 passes over the mix: one expansion per template per pass."""
    ctx = CONTEXT
    templates = TEMPLATES
    for _ in range(100):
        for text in templates:
            expand(text, ctx)
    return 100 * len(templates)


# The seed's transfer-by-meta_data-table function: an expression-only data_map. The caller asks
# for "Sales"; the first expression's nested lookup matches and renders a say, a SWML connect
# and a stop (the branch a successful transfer takes).
DATA_MAP_FUNCTION: dict[str, Any] = {
    "function": "transfer",
    "purpose": "use to transfer to a target",
    "argument": {"type": "object", "properties": {"target": {"type": "string"}}},
    "data_map": {
        "expressions": [
            {
                "string": "${meta_data.table.${lc:args.target}}",
                "pattern": "\\w+",
                "output": {
                    "response": "transferred, the call has ended.",
                    "action": [
                        {"say": "Please stand by while I connect your call."},
                        {
                            "SWML": {
                                "version": "1.0.0",
                                "sections": {
                                    "main": [{"connect": {"to": "${meta_data.table.${lc:args.target}}"}}]
                                },
                            }
                        },
                        {"stop": True},
                    ],
                },
            },
            {
                "string": "${args.target}",
                "pattern": ".*",
                "output": {
                    "response": "I'm sorry, I was unable to transfer your call to ${input.args.target}."
                },
            },
        ]
    },
    "meta_data": {"table": {"support": "+15551230001", "sales": "+15551230002"}},
}


def data_map_round() -> int:
    """200 evaluations of DATA_MAP_FUNCTION's data_map (expressions, match, output rendering)."""
    from callgate.swaig.datamap import WebhookRequest, evaluate
    from callgate.swaig.fetch import Fetched
    from callgate.swml.models import Function

    function = Function.model_validate(DATA_MAP_FUNCTION)
    data_map = function.data_map
    if data_map is None:
        raise SystemExit("DATA_MAP_FUNCTION has no data_map")
    args = {"target": "Sales"}
    call_data = {
        "args": args,
        "meta_data": function.meta_data,
        "global_data": {},
        "caller_id_num": "+15557654321",
    }
    ctx = {**call_data, "input": dict(call_data)}

    async def no_request(request: WebhookRequest) -> Fetched:
        raise AssertionError("an expression-only data_map requests nothing")

    async def batch() -> str | None:
        response = None
        for _ in range(200):
            response = (await evaluate(data_map, ctx, args, no_request)).response
        return response

    if asyncio.run(batch()) != "transferred, the call has ended.":
        raise SystemExit("data_map benchmark: the transfer expression did not match")
    return 200


BENCHMARKS: list[Benchmark] = [
    Benchmark("template expansions", template_round),
    Benchmark("expression-only data_map evaluations", data_map_round),
]


def measure(round_fn: Callable[[], int], seconds: float, repeats: int = 3) -> float:
    """Best operations/s over `repeats` runs of about `seconds` each."""
    round_fn()  # warm caches (compiled templates), as a running agent has them
    best = 0.0
    for _ in range(repeats):
        done = 0
        start = time.perf_counter()
        elapsed = 0.0
        while elapsed < seconds:
            done += round_fn()
            elapsed = time.perf_counter() - start
        best = max(best, done / elapsed)
    return best


def pin_to_one_core() -> None:
    """Measure on one core, so the figure does not depend on the machine's spare cores."""
    if hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement (3 are taken)")
    args = parser.parse_args(argv)
    pin_to_one_core()
    for bench in BENCHMARKS:
        rate = measure(bench.round, args.seconds)
        print(f"{bench.name}: {rate:.0f}/s", flush=True)


if __name__ == "__main__":
    main()
