"""Time for agents, control and channels: real (`SystemClock`) or virtual (`VirtualClock`).

Agent, control and channel code never calls `time.time()` or `asyncio.sleep()` itself; it asks a
`Clock`. That lets the `sim` channel run a 10-minute call in milliseconds.

Virtual time is an event loop whose `time()` is virtual. Whenever the loop would block waiting for
its next timer, the selector wrapper first polls real I/O; only when nothing is ready does it jump
virtual time straight to that timer. In-process HTTP over loopback (the scripted model server,
webhook stubs, their httpx clients) therefore runs at full speed and is never overtaken by a
timer: bytes written to a loopback socket are readable at once. As a margin for peers slightly
slower than that, the poll waits a short real window (`real_poll`) for the first jump after any
I/O; further jumps with no I/O in between do not wait, so idle stretches cost no real time.

Limits:
- Work outside the loop that answers more slowly than `real_poll` (another process, a thread the
  loop does not know about) must be wrapped in `hold()`, otherwise virtual time can jump past it.
- `run_in_executor` jobs (and so `asyncio.to_thread`, DNS look-ups via `getaddrinfo`) are held
  automatically until their future completes.
- While held, timers do not fire: virtual time stands still and the loop waits in real time.
- TCP sockets of the loop get TCP_NODELAY: Nagle's algorithm would otherwise delay a small write
  on loopback by ~40 ms (the peer's delayed ACK), long enough for a timer to overtake it.
- Periodic ticks inside the loop (uvicorn's `serve()` wakes every 0.1 s) split a long jump into
  many short ones; that costs loop iterations, not real waiting, but `Server.startup()` /
  `shutdown()` avoid it altogether.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import selectors
import socket
import threading
import time as _time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import Executor
from types import TracebackType
from typing import Any, Protocol, TypeVar, TypeVarTuple, cast, runtime_checkable

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# 2026-01-01T00:00:00Z: a fixed epoch keeps simulated calls reproducible.
DEFAULT_START_EPOCH = 1_767_225_600.0
DEFAULT_REAL_POLL = 0.005
# While held, wait in real time in slices this long so a hold released elsewhere is noticed.
_HELD_SLICE = 0.05


@runtime_checkable
class Clock(Protocol):
    """Where agent, control and channel code gets the time from."""

    def monotonic(self) -> float:
        """Seconds on a monotonic scale (differences only)."""
        ...

    def time(self) -> float:
        """Wall-clock epoch seconds."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class TimeHold:
    """Keeps virtual time from advancing while real work is in flight.

    Usable as `with`, `async with`, or via `acquire()`/`release()`; nests (it is a counter).
    On a real clock it does nothing.
    """

    def __init__(self, counter: _HoldCounter | None) -> None:
        self._counter = counter

    def acquire(self) -> None:
        if self._counter is not None:
            self._counter.add(1)

    def release(self) -> None:
        if self._counter is not None:
            self._counter.add(-1)

    def __enter__(self) -> TimeHold:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    async def __aenter__(self) -> TimeHold:
        self.acquire()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class _HoldCounter:
    """Thread-safe: a hold may be released from a worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def add(self, delta: int) -> None:
        with self._lock:
            if self._count + delta < 0:
                raise RuntimeError("time hold released more often than acquired")
            self._count += delta

    @property
    def count(self) -> int:
        return self._count


class SystemClock:
    """Real time: the running loop's clock (or time.monotonic outside a loop) and time.time()."""

    def monotonic(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return _time.monotonic()

    def time(self) -> float:
        return _time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def hold(self) -> TimeHold:
        return TimeHold(None)


class _VirtualSelector(selectors.BaseSelector):
    """Wraps the real selector; turns 'wait for the next timer' into a virtual jump."""

    def __init__(self, inner: selectors.BaseSelector, real_poll: float) -> None:
        self._inner = inner
        self._real_poll = real_poll
        self._loop: VirtualTimeEventLoop | None = None
        self._io_seen = True

    def bind(self, loop: VirtualTimeEventLoop) -> None:
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self._loop
        if loop is None or timeout is None or timeout <= 0:
            # No timers (block for real I/O) or work is ready (just poll).
            return self._seen(self._inner.select(timeout))
        if loop.held:
            # Real work outside the loop is in flight: wait for it in real time, never jump.
            return self._seen(self._inner.select(min(timeout, _HELD_SLICE)))
        # Wait the real window only while an I/O conversation is going on (I/O seen since the
        # last jump) and a socket could deliver: an idle loop then runs periodic ticks (uvicorn's
        # serve() wakes every 0.1 s) at full speed instead of paying the window on every tick.
        window = min(timeout, self._real_poll) if self._io_seen and len(self._inner.get_map()) > 1 else 0.0
        ready = self._inner.select(window)
        if ready or loop.held:
            return self._seen(ready)
        self._io_seen = False
        loop._advance(timeout)
        return []

    def _seen(
        self, ready: list[tuple[selectors.SelectorKey, int]]
    ) -> list[tuple[selectors.SelectorKey, int]]:
        if ready:
            self._io_seen = True
        return ready


class VirtualTimeEventLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose clock is virtual and jumps to the next timer when idle."""

    def __init__(self, real_poll: float = DEFAULT_REAL_POLL) -> None:
        self._virtual_now = 0.0
        self._holds = _HoldCounter()
        self.jumped = 0.0  # total virtual seconds skipped, for reports and benchmarks
        selector = _VirtualSelector(selectors.DefaultSelector(), max(0.0, real_poll))
        super().__init__(selector)
        if real_poll < 0:
            self.close()
            raise ValueError("real_poll must not be negative")
        selector.bind(self)

    def time(self) -> float:
        return self._virtual_now

    @property
    def held(self) -> bool:
        return self._holds.count > 0

    def hold(self) -> TimeHold:
        """Keep virtual time still while real external work (another process, a thread) runs."""
        return TimeHold(self._holds)

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[*Ts], T], *args: *Ts
    ) -> asyncio.Future[T]:
        # A thread-pool job is real work the loop cannot see: hold time until its future is done.
        future = super().run_in_executor(executor, func, *args)
        hold = self.hold()
        hold.acquire()
        future.add_done_callback(lambda _: hold.release())
        return future

    def _make_socket_transport(self, sock: socket.socket, *args: Any, **kwargs: Any) -> Any:
        # Nagle + delayed ACK hold a small second write on loopback for ~40 ms, far past the poll
        # window, and asyncio only disables Nagle for sockets whose proto is IPPROTO_TCP (a socket
        # made with proto 0 and its accepted children are not). Disable it for every TCP socket.
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super()._make_socket_transport(sock, *args, **kwargs)  # type: ignore[misc]

    def _advance(self, seconds: float) -> None:
        target = self._virtual_now + seconds
        # Land exactly on the next timer so float rounding never leaves it a hair in the future.
        scheduled = cast(list[asyncio.TimerHandle], getattr(self, "_scheduled", []))
        if scheduled and 0 < scheduled[0].when() - target < 1e-6:
            target = scheduled[0].when()
        self.jumped += target - self._virtual_now
        self._virtual_now = target


class VirtualClock:
    """A Clock on a VirtualTimeEventLoop: `time()` is `start_epoch` plus virtual seconds elapsed.

    Without a loop it binds to the running loop on first use, which must be a VirtualTimeEventLoop.
    """

    def __init__(
        self, loop: VirtualTimeEventLoop | None = None, *, start_epoch: float = DEFAULT_START_EPOCH
    ) -> None:
        self._loop = loop
        self._origin = loop.time() if loop is not None else None
        self.start_epoch = start_epoch

    @property
    def loop(self) -> VirtualTimeEventLoop:
        if self._loop is None:
            running = asyncio.get_running_loop()
            if not isinstance(running, VirtualTimeEventLoop):
                raise RuntimeError("VirtualClock needs a VirtualTimeEventLoop (use run_virtual)")
            self._loop = running
            self._origin = running.time()
        return self._loop

    def monotonic(self) -> float:
        return self.loop.time()

    def time(self) -> float:
        now = self.loop.time()
        return self.start_epoch + now - (self._origin or 0.0)

    async def sleep(self, seconds: float) -> None:
        loop = self.loop
        if asyncio.get_running_loop() is not loop:
            raise RuntimeError("VirtualClock used from a different event loop")
        await asyncio.sleep(max(0.0, seconds))

    def hold(self) -> TimeHold:
        return self.loop.hold()


def holding(clock: Clock) -> TimeHold:
    """`clock.hold()` when the clock is virtual, a no-op hold otherwise."""
    hold = getattr(clock, "hold", None)
    if callable(hold):
        result = hold()
        if isinstance(result, TimeHold):
            return result
    return TimeHold(None)


class VirtualTimeEventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """Makes `asyncio.new_event_loop()` (and pytest-asyncio) use virtual time."""

    def __init__(self, real_poll: float = DEFAULT_REAL_POLL) -> None:
        super().__init__()
        self._real_poll = real_poll

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return VirtualTimeEventLoop(real_poll=self._real_poll)


def run_virtual(
    coro_factory: Callable[[VirtualClock], Coroutine[Any, Any, T]] | Callable[[], Coroutine[Any, Any, T]],
    *,
    start_epoch: float = DEFAULT_START_EPOCH,
    real_poll: float = DEFAULT_REAL_POLL,
) -> T:
    """Run a coroutine on a fresh VirtualTimeEventLoop and return its result.

    `coro_factory` is called inside the loop with the VirtualClock if it takes one argument,
    with none otherwise.
    """

    async def main(clock: VirtualClock) -> T:
        if _takes_argument(coro_factory):
            return await cast(Callable[[VirtualClock], Coroutine[Any, Any, T]], coro_factory)(clock)
        return await cast(Callable[[], Coroutine[Any, Any, T]], coro_factory)()

    with asyncio.Runner(loop_factory=lambda: VirtualTimeEventLoop(real_poll=real_poll)) as runner:
        loop = runner.get_loop()
        assert isinstance(loop, VirtualTimeEventLoop)
        return runner.run(main(VirtualClock(loop, start_epoch=start_epoch)))


def _takes_argument(func: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return bool(positional)


# ---------------------------------------------------------------- deadlines on the clock


class Deadline(Exception):
    """The clock ran out before the awaited work finished (the work was cancelled)."""


async def within(clock: Clock, seconds: float, work: Awaitable[T]) -> T:
    """`work`'s result, or Deadline after `seconds` on `clock` (the work is then cancelled)."""
    task: asyncio.Future[T] = asyncio.ensure_future(work)
    timer = asyncio.ensure_future(clock.sleep(max(0.0, seconds)))
    pending: set[asyncio.Future[Any]] = {task, timer}
    try:
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        timer.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise
    if task.done():
        timer.cancel()
        return task.result()
    task.cancel()
    # Wait for the work's own clean-up, but never swallow a cancellation of the caller itself:
    # that must stay a cancellation, not turn into a timeout.
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # seen: a failure in its clean-up is not the caller's to handle
    raise Deadline(f"not done within {seconds:g}s")


# ---------------------------------------------------------------- real-time limits


class RealTimeLimit:
    """A budget of real seconds for work outside virtual time (another process answering over the
    network while the virtual clock is held). The loop's own timers stand still while time is held,
    so a timeout on them would never fire; this one runs on a thread timer in real time.

    `async with limit.running():` raises TimeoutError once the budget is spent, whether or not the
    loop's time is virtual or held; several blocks may share one budget.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = _time.monotonic() + max(0.0, seconds)

    def remaining(self) -> float:
        return max(0.0, self._end - _time.monotonic())

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("RealTimeLimit.running() needs a task")
        state = {"inside": True, "fired": False}

        def fire() -> None:  # on the loop's thread
            if state["inside"]:
                state["fired"] = True
                task.cancel()

        def from_thread() -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(fire)

        timer = threading.Timer(self.remaining(), from_thread)
        timer.daemon = True
        timer.start()
        try:
            yield
        except asyncio.CancelledError:
            if state["fired"] and task.uncancel() == 0:
                raise TimeoutError(f"not done within {self.seconds:g} s of real time") from None
            raise
        finally:
            state["inside"] = False
            timer.cancel()
