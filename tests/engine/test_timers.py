"""Silence and duration timers on virtual time."""

from __future__ import annotations

import asyncio

import pytest

from callgate.control.timers import SilencePolicy, SilenceWatch, TimerConfigError, check_ms
from callgate.durations import parse_hard_stop
from callgate.telephony.clock import VirtualClock, run_virtual


def test_hard_stop_forms() -> None:
    assert parse_hard_stop("30m") == 1800
    assert parse_hard_stop("1h30m") == 5400
    assert parse_hard_stop("90s") == 90
    assert parse_hard_stop("00:02:00") == 120
    assert parse_hard_stop("2:30") == 150


@pytest.mark.parametrize("bad", ["", "soon", "-5m", "0", "00:00", "30 parsecs"])
def test_hard_stop_rejects_nonsense(bad: str) -> None:
    with pytest.raises(ValueError, match="hard_stop_time"):
        parse_hard_stop(bad)


def test_ms_params() -> None:
    assert check_ms("inactivity_timeout", 30000) == 30.0
    assert check_ms("inactivity_timeout", 0) is None
    assert check_ms("inactivity_timeout", None) is None
    with pytest.raises(TimerConfigError, match="inactivity_timeout"):
        check_ms("inactivity_timeout", -1)


def _watch(
    clock: VirtualClock, events: list[tuple[str, float]], attention: float | None, inactivity: float | None
):
    async def on_inactivity() -> None:
        events.append(("inactivity", clock.monotonic()))

    def on_attention(prompt: str) -> None:
        events.append(("attention", clock.monotonic()))

    policy = SilencePolicy(
        attention=attention, attention_prompt="hello?", inactivity=inactivity, goodbye="bye"
    )
    return SilenceWatch(clock, policy, on_attention, on_inactivity)


def test_inactivity_fires_after_silence_while_waiting() -> None:
    async def main(clock: VirtualClock) -> list[tuple[str, float]]:
        events: list[tuple[str, float]] = []
        start = clock.monotonic()
        watch = _watch(clock, events, None, 30.0)
        task = asyncio.create_task(watch.run())
        watch.set_waiting(True)
        await task
        return [(kind, t - start) for kind, t in events]

    events = run_virtual(main)
    assert events == [("inactivity", pytest.approx(30.0))]


def test_agent_speech_is_not_caller_silence_and_speech_resets() -> None:
    async def main(clock: VirtualClock) -> list[tuple[str, float]]:
        events: list[tuple[str, float]] = []
        start = clock.monotonic()
        watch = _watch(clock, events, None, 30.0)
        task = asyncio.create_task(watch.run())
        watch.set_waiting(True)
        await clock.sleep(20)  # 20 s silent
        watch.set_waiting(False)  # the agent talks for 100 s: not silence
        await clock.sleep(100)
        watch.set_waiting(True)
        await clock.sleep(5)  # 25 s of silence in all
        watch.caller_activity()  # the caller speaks: back to zero
        await task
        return [(kind, t - start) for kind, t in events]

    # 20 + 100 + 5, then a fresh 30 s.
    assert run_virtual(main) == [("inactivity", pytest.approx(155.0))]


def test_attention_reprompts_do_not_reset_inactivity() -> None:
    async def main(clock: VirtualClock) -> list[tuple[str, float]]:
        events: list[tuple[str, float]] = []
        start = clock.monotonic()
        watch = _watch(clock, events, 10.0, 25.0)

        def on_attention(prompt: str) -> None:
            events.append(("attention", clock.monotonic()))
            watch.set_waiting(True)  # the re-prompt was spoken at once

        watch._on_attention = on_attention
        task = asyncio.create_task(watch.run())
        watch.set_waiting(True)
        await task
        return [(kind, round(t - start, 3)) for kind, t in events]

    assert run_virtual(main) == [("attention", 10.0), ("attention", 20.0), ("inactivity", 25.0)]


@pytest.mark.parametrize(
    ("params", "path", "message"),
    [
        ({"hard_stop_time": "soon"}, "params.hard_stop_time", "is not a duration"),
        ({"inactivity_timeout": -1}, "params.inactivity_timeout", "milliseconds"),
        ({"attention_timeout": "often"}, "params.attention_timeout", ""),
    ],
)
def test_invalid_timer_params_are_document_errors(params: dict[str, object], path: str, message: str) -> None:
    from callgate.swml.errors import DocumentError
    from callgate.swml.loader import parse_document

    document = {"sections": {"main": [{"ai": {"prompt": {"text": "hi"}, "params": params}}]}}
    with pytest.raises(DocumentError) as caught:
        parse_document(document, source="agent.yaml")
    text = "\n".join(str(issue) for issue in caught.value.issues)
    assert f"sections.main[0].ai.{path}" in text
    assert message in text
