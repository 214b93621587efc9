"""Virtual time: jumps when idle, never overtakes loopback HTTP, executor jobs or held work."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from callgate.telephony.clock import (
    DEFAULT_START_EPOCH,
    Clock,
    SystemClock,
    TimeHold,
    VirtualClock,
    VirtualTimeEventLoop,
    VirtualTimeEventLoopPolicy,
    holding,
    run_virtual,
)


@contextlib.asynccontextmanager
async def serve_in_loop(app: Starlette) -> AsyncIterator[str]:
    """A real uvicorn server on 127.0.0.1 inside the running loop.

    startup()/shutdown() rather than serve(): serve()'s 0.1 s housekeeping tick would make
    virtual time crawl in 0.1 s steps. startup() expects what serve() prepares: a loaded config
    and a lifespan ("off" here).
    """
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    # proto 0 on purpose: asyncio then leaves Nagle on, and the loop must switch it off itself.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await server.startup(sockets=[sock])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await asyncio.wait_for(server.shutdown(), timeout=10)
        sock.close()


def _counter_app(state: dict[str, int]) -> Starlette:
    async def count(request: Request) -> JSONResponse:
        state["served"] += 1
        return JSONResponse({"n": state["served"]})

    async def slow(request: Request) -> JSONResponse:
        # Real work in a worker thread, longer than the real poll window.
        await asyncio.to_thread(time.sleep, 0.05)
        return JSONResponse({"slow": True})

    return Starlette(routes=[Route("/count", count), Route("/slow", slow)])


def test_protocol_is_satisfied() -> None:
    assert isinstance(SystemClock(), Clock)
    assert isinstance(VirtualClock(), Clock)


def test_ten_minute_sleep_is_instant_and_ordered() -> None:
    async def main(clock: VirtualClock) -> list[tuple[str, float]]:
        woke: list[tuple[str, float]] = []

        async def sleeper(name: str, seconds: float) -> None:
            await clock.sleep(seconds)
            woke.append((name, clock.monotonic()))

        await asyncio.gather(sleeper("c", 600), sleeper("a", 1.5), sleeper("b", 35))
        return woke

    started = time.perf_counter()
    woke = run_virtual(main)
    print(f"600 virtual seconds in {time.perf_counter() - started:.3f}s real")
    assert woke == [("a", 1.5), ("b", 35.0), ("c", 600.0)]


def test_time_is_epoch_plus_virtual_elapsed() -> None:
    async def main(clock: VirtualClock) -> tuple[float, float]:
        before = clock.time()
        await clock.sleep(120)
        return before, clock.time()

    before, after = run_virtual(main, start_epoch=1_000_000.0)
    assert before == 1_000_000.0
    assert after == 1_000_120.0


def test_default_epoch_and_zero_argument_factory() -> None:
    async def main() -> float:
        clock = VirtualClock()  # binds to the running loop lazily
        await clock.sleep(2)
        return clock.time()

    assert run_virtual(main) == DEFAULT_START_EPOCH + 2


def test_timeouts_fire_on_virtual_time() -> None:
    async def main(clock: VirtualClock) -> float:
        never = asyncio.Event()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(never.wait(), timeout=30)
        return clock.monotonic()

    assert run_virtual(main) == 30.0


def test_virtual_clock_refuses_a_real_loop() -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match="VirtualTimeEventLoop"):
            VirtualClock().monotonic()

    asyncio.run(main())


def test_hold_counter_rejects_extra_release() -> None:
    loop = VirtualTimeEventLoop()
    try:
        hold = loop.hold()
        with hold:
            assert loop.held
        assert not loop.held
        with pytest.raises(RuntimeError, match="released"):
            hold.release()
    finally:
        loop.close()


def test_policy_makes_virtual_loops() -> None:
    loop = VirtualTimeEventLoopPolicy().new_event_loop()
    try:
        assert isinstance(loop, VirtualTimeEventLoop)
        loop.run_until_complete(asyncio.sleep(100))
        assert loop.time() == 100.0
        assert loop.jumped == 100.0
    finally:
        loop.close()


def test_negative_real_poll_is_rejected() -> None:
    with pytest.raises(ValueError):
        VirtualTimeEventLoop(real_poll=-1)


def test_exception_in_coroutine_propagates() -> None:
    async def main(clock: VirtualClock) -> None:
        await clock.sleep(10)
        raise LookupError("boom")

    with pytest.raises(LookupError, match="boom"):
        run_virtual(main)


def test_executor_jobs_hold_time() -> None:
    async def main(clock: VirtualClock) -> tuple[float, list[str]]:
        order: list[str] = []

        async def timer() -> None:
            await clock.sleep(1)
            order.append("timer")

        async def job() -> None:
            # 50 ms of real work: ten times the poll window.
            await asyncio.get_running_loop().run_in_executor(None, time.sleep, 0.05)
            order.append("job")

        await asyncio.gather(timer(), job())
        return clock.monotonic(), order

    now, order = run_virtual(main)
    assert order == ["job", "timer"]
    assert now == 1.0


def _finish_later(loop: asyncio.AbstractEventLoop, future: asyncio.Future[str], delay: float) -> None:
    def run() -> None:
        time.sleep(delay)
        loop.call_soon_threadsafe(future.set_result, "done")

    threading.Thread(target=run, daemon=True).start()


def test_hold_keeps_timers_from_overtaking_a_foreign_thread() -> None:
    async def main(clock: VirtualClock) -> list[str]:
        order: list[str] = []
        loop = asyncio.get_running_loop()

        async def timer() -> None:
            await clock.sleep(5)
            order.append("timer")

        async def foreign() -> None:
            future: asyncio.Future[str] = loop.create_future()
            async with clock.hold():
                _finish_later(loop, future, 0.05)
                order.append(await future)

        await asyncio.gather(timer(), foreign())
        return order

    assert run_virtual(main) == ["done", "timer"]


def test_without_hold_a_foreign_thread_is_overtaken() -> None:
    """The documented limit: unheld outside work slower than the poll window loses to timers."""

    async def main(clock: VirtualClock) -> list[str]:
        order: list[str] = []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()

        async def timer() -> None:
            await clock.sleep(5)
            order.append("timer")

        async def foreign() -> None:
            _finish_later(loop, future, 0.2)
            order.append(await future)

        await asyncio.gather(timer(), foreign())
        return order

    assert run_virtual(main) == ["timer", "done"]


def test_loopback_http_is_never_overtaken_by_a_pending_timer() -> None:
    async def main(clock: VirtualClock) -> tuple[int, int, float, float]:
        state = {"served": 0}
        woke_after: list[int] = []

        async def sleeper() -> None:
            await clock.sleep(600)
            woke_after.append(state["served"])

        sleeping = asyncio.create_task(sleeper())
        async with serve_in_loop(_counter_app(state)) as base, httpx.AsyncClient(base_url=base) as client:
            for expected in range(1, 201):
                response = await client.get("/count")
                assert response.json() == {"n": expected}
            time_after_requests = clock.monotonic()
        await sleeping
        return state["served"], woke_after[0], time_after_requests, clock.monotonic()

    started = time.perf_counter()
    served, woke_after, after_requests, end = run_virtual(main)
    print(f"200 loopback requests + 600 virtual seconds in {time.perf_counter() - started:.3f}s real")
    assert served == 200
    assert woke_after == 200
    assert after_requests < 600
    assert end == 600.0


def test_slow_handler_in_thread_is_not_overtaken() -> None:
    async def main(clock: VirtualClock) -> list[str]:
        order: list[str] = []

        async def timer() -> None:
            await clock.sleep(1)
            order.append("timer")

        async with (
            serve_in_loop(_counter_app({"served": 0})) as base,
            httpx.AsyncClient(base_url=base) as client,
        ):
            pending = asyncio.create_task(timer())
            response = await client.get("/slow")
            order.append(f"response {response.status_code}")
            await pending
        return order

    assert run_virtual(main) == ["response 200", "timer"]


def test_uvicorn_serve_ticks_do_not_stall_a_long_jump() -> None:
    """serve() wakes every 0.1 s: 600 virtual seconds are 6000 ticks, run without real waits."""

    async def main(clock: VirtualClock) -> tuple[float, int]:
        config = uvicorn.Config(_counter_app({"served": 0}), host="127.0.0.1", port=0, log_level="warning")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                await asyncio.sleep(0)
            port = server.servers[0].sockets[0].getsockname()[1]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                first = (await client.get("/count")).json()["n"]
                await clock.sleep(600)
                second = (await client.get("/count")).json()["n"]
            return clock.monotonic(), first + second
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, timeout=30)

    started = time.perf_counter()
    now, total = run_virtual(main)
    print(f"600 virtual seconds beside uvicorn.serve() in {time.perf_counter() - started:.3f}s real")
    assert now >= 600.0
    assert total == 3


async def test_system_clock_is_real() -> None:
    clock = SystemClock()
    before, wall = clock.monotonic(), clock.time()
    await clock.sleep(0.01)
    assert clock.monotonic() >= before + 0.005
    assert abs(wall - time.time()) < 60
    with clock.hold():  # a no-op, but usable in code written for both clocks
        pass


def test_holding_helper() -> None:
    assert isinstance(holding(SystemClock()), TimeHold)

    class Bare:
        def monotonic(self) -> float:
            return 0.0

        def time(self) -> float:
            return 0.0

        async def sleep(self, seconds: float) -> None:
            return None

    with holding(Bare()):
        pass
