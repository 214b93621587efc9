"""Runs scenario files: discovery, wiring one simulated call, checking the outcome.

Each scenario runs in its own fresh virtual-time loop (`run_virtual`), with its own timeline, sim
switch and caller leg, scripted model server and stubbed HTTP client. The engine side of the call is
built by `callgate.runtime.scenario_call.build_call_under_test` (imported lazily, so this module loads
without the engine).
"""

from __future__ import annotations

import asyncio
import inspect
import re
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from callgate.channels.sim import SimCall, SimSwitch, SimWorld
from callgate.scenario.driver import CallUnderTest, LegDriver, TurnDriver
from callgate.scenario.expect import check
from callgate.scenario.format import (
    SCENARIO_SUFFIXES,
    Scenario,
    ScenarioError,
    load_scenario,
    read_document,
)
from callgate.scenario.http_stubs import StubTransport
from callgate.scenario.model_server import ScriptedModelServer
from callgate.scenario.report import ScenarioResult
from callgate.swml.errors import DocumentError
from callgate.telephony.clock import Clock, VirtualClock, run_virtual
from callgate.timeline import CallOutcome, Timeline

__all__ = [
    "CallInfo",
    "ScenarioResult",
    "build_call_under_test",
    "discover",
    "run_scenario",
    "run_scenario_file",
]

# Outbound requests of the engine (webhooks, post_prompt delivery) must not hang a scenario forever.
HTTP_TIMEOUT = 30.0
# How long (virtual seconds) post-call work (post_prompt delivery and its retries) may take.
FINISH_TIMEOUT = 3600.0


@dataclass(frozen=True)
class CallInfo:
    """Who calls whom, from the scenario's `call` block."""

    from_number: str
    to_number: str
    caller_name: str


class CallUnderTestFactory(Protocol):
    def __call__(
        self,
        *,
        agent_source: str | dict[str, Any],
        base_dir: Path,
        caller: SimCall,
        switch: SimSwitch,
        clock: Clock,
        timeline: Timeline,
        model_base_url: Callable[[str], str],
        http: httpx.AsyncClient,
        call: CallInfo,
        guard_exempt: Callable[[str], bool] | None = None,
    ) -> CallUnderTest: ...


def build_call_under_test(
    *,
    agent_source: str | dict[str, Any],
    base_dir: Path,
    caller: SimCall,
    switch: SimSwitch,
    clock: Clock,
    timeline: Timeline,
    model_base_url: Callable[[str], str],
    http: httpx.AsyncClient,
    call: CallInfo,
    guard_exempt: Callable[[str], bool] | None = None,
) -> CallUnderTest:
    """The engine hook: builds the agent side of a scenario call (lives in the engine, imported lazily).

    `guard_exempt(url)` is True for URLs that go to the real network (passthrough, the agent URL):
    DESIGN §6 exempts them from the private-address guard. It is handed on when the engine's builder
    declares a `guard_exempt` parameter.
    """
    from callgate.runtime.scenario_call import build_call_under_test as build

    extra: dict[str, Any] = {}
    if guard_exempt is not None and "guard_exempt" in inspect.signature(build).parameters:
        extra["guard_exempt"] = guard_exempt
    return build(
        agent_source=agent_source,
        base_dir=base_dir,
        caller=caller,
        switch=switch,
        clock=clock,
        timeline=timeline,
        model_base_url=model_base_url,
        http=http,
        call=call,
        **extra,
    )


# ---------------------------------------------------------------- discovery


_TOP_KEY = re.compile(r"^[\"']?(agent|turns|expect)[\"']?\s*:", re.MULTILINE)
# JSON is often written on one line: its keys need not start one.
_JSON_KEY = re.compile(r"\"(agent|turns|expect)\"\s*:")


def _looks_like_scenario(path: Path) -> bool:
    """A top-level mapping with `agent` and (`turns` or `expect`): agent documents are not scenarios."""
    try:
        data = read_document(path)
    except ScenarioError:
        # A broken file that names the keys at the top level is a scenario to report, not to skip.
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return False
        keys = set((_JSON_KEY if path.suffix.lower() == ".json" else _TOP_KEY).findall(text))
        return "agent" in keys and bool(keys & {"turns", "expect"})
    return isinstance(data, dict) and "agent" in data and ("turns" in data or "expect" in data)


def discover(paths: Iterable[Path]) -> list[Path]:
    """Scenario files: each file given, and scenario-shaped files found recursively in each folder.

    A path that does not exist raises FileNotFoundError. Files given by name are always taken (a bad
    one is then reported as a failed scenario); files in folders only if they look like scenarios.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            candidates = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SCENARIO_SUFFIXES
            )
            found += [p for p in candidates if _looks_like_scenario(p)]
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(str(path))
    return list(dict.fromkeys(found))


# ---------------------------------------------------------------- one scenario


async def run_scenario(
    path: Path,
    *,
    clock: VirtualClock | None = None,
    factory: CallUnderTestFactory | None = None,
) -> ScenarioResult:
    """Load and run one scenario inside the running virtual-time loop; never raises for its failures."""
    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        return ScenarioResult(file=path, name=path.stem, error="\n".join(exc.problems), malformed=True)
    return await run_loaded(scenario, path, clock=clock or VirtualClock(), factory=factory)


async def run_loaded(
    scenario: Scenario,
    path: Path,
    *,
    clock: VirtualClock,
    factory: CallUnderTestFactory | None = None,
) -> ScenarioResult:
    result = ScenarioResult(file=path, name=scenario.name)
    model = ScriptedModelServer(scenario.llm)
    try:
        await model.start()
    except Exception as exc:
        result.error = f"could not start the scripted model server: {exc}"
        return result
    try:
        # Time zero of the call is taken once the model server is up.
        world = SimWorld(
            clock,
            legs=scenario.legs,
            from_number=scenario.call.from_number,
            to_number=scenario.call.to_number,
            caller_name=scenario.call.caller_name,
        )
        outcome, transport = await _run_call(scenario, path, world, model, factory, result)
    finally:
        await model.stop()

    outcome = merge(outcome, world=world, model_failures=model.failures, transport=transport)
    result.outcome = outcome
    result.duration = outcome.hangup_at if outcome.hangup_at is not None else world.now()
    result.failures = check(scenario.expect, outcome)
    return result


async def _run_call(
    scenario: Scenario,
    path: Path,
    world: SimWorld,
    model: ScriptedModelServer,
    factory: CallUnderTestFactory | None,
    result: ScenarioResult,
) -> tuple[CallOutcome | None, StubTransport]:
    """Build the call under test, drive it, and return its outcome (None if it crashed)."""
    clock, timeline = world.clock, world.timeline
    # Fetching an `agent:` URL really goes out, like passthrough.
    agent_url = [scenario.agent] if isinstance(scenario.agent, str) and scenario.agent_is_url else []
    transport = StubTransport(
        scenario.http,
        clock=clock,
        timeline=timeline,
        now=world.now,
        passthrough=scenario.passthrough,
        passthrough_exact=agent_url,
        strict=scenario.strict_http,
    )
    try:
        async with httpx.AsyncClient(transport=transport, timeout=HTTP_TIMEOUT) as http:
            build = factory or build_call_under_test
            call = build(
                agent_source=scenario.agent,
                base_dir=path.parent.resolve(),
                caller=world.caller,
                switch=world.switch,
                clock=clock,
                timeline=timeline,
                model_base_url=model.base_url,
                http=http,
                call=CallInfo(scenario.call.from_number, scenario.call.to_number, scenario.call.caller_name),
                guard_exempt=transport.is_passthrough,
            )
            driver = TurnDriver(
                call,
                world.caller,
                scenario.turns,
                clock=clock,
                timeline=timeline,
                max_duration=scenario.max_duration,
                now=world.now,
            )
            legs = _drive_legs(scenario, world, call)
            try:
                await driver.run()
            finally:
                await legs.stop()
            try:
                # Virtual seconds: a stuck engine still ends the scenario (the clock jumps here).
                outcome = await asyncio.wait_for(call.finish(), FINISH_TIMEOUT)
            except TimeoutError:
                raise RuntimeError(f"post-call work did not finish within {FINISH_TIMEOUT:g}s") from None
            return outcome, transport
    except DocumentError as exc:
        # The agent document is broken or cannot be fetched: bad input, not an engine crash.
        result.error = "agent: " + "; ".join(str(issue) for issue in exc.errors or exc.issues)
        result.malformed = True
        timeline.add(world.now(), "agent-invalid", error=result.error)
        await world.caller.hangup("agent-invalid")
        return None, transport
    except Exception as exc:  # a crash of the engine is a failed scenario, with what happened so far
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        result.error = f"the call crashed: {detail}"
        timeline.add(world.now(), "crash", error=detail)
        # Stop whatever the engine left running on the leg; the call is over.
        await world.caller.hangup("scenario-crashed")
        return None, transport
    finally:
        await transport.aclose()


class _LegTasks:
    """The drivers of dialled legs' `turns`, started as each leg answers (a warm transfer's supervisor)."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    async def stop(self) -> None:
        """The call is over: what a leg still had to say is moot. A leg driver's own error is raised."""
        for task in self.tasks:
            task.cancel()
        results = await asyncio.gather(*self.tasks, return_exceptions=True)
        for outcome in results:
            if isinstance(outcome, Exception):
                raise outcome


def _drive_legs(scenario: Scenario, world: SimWorld, call: CallUnderTest) -> _LegTasks:
    legs = _LegTasks()

    def answered(leg: SimCall) -> None:
        if leg.leg not in scenario.legs:
            return
        turns = scenario.leg_turns(leg.leg)
        if not turns:
            return
        driver = LegDriver(
            call, leg, leg.leg, turns, clock=world.clock, timeline=world.timeline, now=world.now
        )
        legs.tasks.append(asyncio.create_task(driver.run(), name=f"leg-turns-{leg.leg}"))

    world.switch.on_answer(answered)
    return legs


def merge(
    outcome: CallOutcome | None,
    *,
    world: SimWorld,
    model_failures: list[str],
    transport: StubTransport,
) -> CallOutcome:
    """Fold what the runner saw (sim legs, model failures, HTTP exchanges) into the engine's outcome."""
    merged = outcome if outcome is not None else CallOutcome(timeline=world.timeline)
    if merged.timeline is not world.timeline:
        # The engine kept its own timeline: add ours and keep the order of time.
        ours = [e for e in world.timeline.events if all(e is not mine for mine in merged.timeline.events)]
        merged.timeline.events = sorted([*merged.timeline.events, *ours], key=lambda e: e.t)
    if not merged.utterances:
        merged.utterances = list(world.utterances)
    caller = world.caller
    if merged.ended_reason is None and caller.ended_reason is not None:
        merged.ended_reason = caller.ended_reason
    if merged.hangup_at is None and caller.hangup_at is not None:
        merged.hangup_at = caller.hangup_at
    for failure in [*model_failures, *transport.failures]:
        if failure not in merged.failures:
            merged.failures.append(failure)
    known = {id(e) for e in merged.http}
    merged.http.extend(e for e in transport.exchanges if id(e) not in known)
    return merged


def run_scenario_file(path: Path, *, factory: CallUnderTestFactory | None = None) -> ScenarioResult:
    """Run one scenario in its own fresh virtual-time loop (synchronous; for the CLI)."""

    async def main(clock: VirtualClock) -> ScenarioResult:
        return await run_scenario(path, clock=clock, factory=factory)

    return run_virtual(main)
