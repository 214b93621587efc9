"""The call itself never leaves the caller in silence or stuck (issue 10, items 8-10): the speaker's
queue, the closing state after a silence timeout, a hard stop that is hard, a media timeout that
hangs the leg up, a crash that apologises and is recorded, cancellations that stay cancellations.
Real engine on the sim channel and virtual time; models and webhooks are loopback servers."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from callgate.agent.history import Conversation
from callgate.agent.session import GOODBYE_BROKEN, GOODBYE_TIME_UP
from callgate.agent.speaker import Speaker
from callgate.channels.sim import SimWorld, speech_seconds
from callgate.control.call_state import CallState
from callgate.redact import install_log_redaction
from callgate.scenario.model_server import ScriptedModelServer
from callgate.scenario.runner import run_scenario_file
from callgate.telephony.clock import Deadline, VirtualClock, run_virtual, within

from .misbehaving_model import MisbehavingModel, text
from .security_support import ModelThread, run_cli
from .sim_call import LONG, agent, sim_call

# ---------------------------------------------------------------- item 8: the speaker's queue


def test_text_queued_by_another_task_while_drain_waits_is_spoken() -> None:
    async def main(clock: VirtualClock) -> list[str]:
        world = SimWorld(clock)
        await world.caller.answer()
        speaker = Speaker(world.caller, [])
        speaker.say_soon("One.")
        draining = asyncio.create_task(speaker.drain())
        await asyncio.sleep(0)  # drain() is waiting for "One."
        speaker.say_soon("Two.")  # queued by this task meanwhile
        await within(clock, LONG, draining)
        await within(clock, LONG, speaker.drain())
        return [u.text for u in world.utterances]

    assert run_virtual(main) == ["One.", "Two."]


def test_two_drains_at_once_leave_nothing_behind_for_later_speech() -> None:
    async def main(clock: VirtualClock) -> list[str]:
        world = SimWorld(clock)
        await world.caller.answer()
        speaker = Speaker(world.caller, [])
        speaker.say_soon("One.")
        await within(clock, LONG, asyncio.gather(speaker.drain(), speaker.drain()))
        speaker.say_soon("Three.")
        await within(clock, LONG, speaker.drain())
        return [u.text for u in world.utterances]

    assert run_virtual(main) == ["One.", "Three."]


def test_refused_speech_is_logged_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    refused: list[tuple[str, str]] = []

    async def main(clock: VirtualClock) -> None:
        world = SimWorld(clock)
        await world.caller.answer()
        await world.caller.hold()
        speaker = Speaker(world.caller, [], on_refused=lambda said, why: refused.append((said, why)))
        await within(clock, LONG, speaker.say("Are you still there?"))

    with caplog.at_level(logging.INFO, logger="callgate.agent.speaker"):
        run_virtual(main)
    assert refused and refused[0][0] == "Are you still there?" and "hold" in refused[0][1]
    assert any("Are you still there?" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- item 8: the closing state

GOODBYE = "I haven't heard from you in a while, so I am going to end this call now. Goodbye."


def test_caller_speech_during_the_inactivity_goodbye_starts_no_turn() -> None:
    async def main(clock: VirtualClock) -> tuple[int, list[str], str, list[str]]:
        model = MisbehavingModel([text("Hello, this is Frank."), text("Oh, you are back!")])
        document = agent({"inactivity_timeout": 5000, "inactivity_goodbye": GOODBYE})
        async with model, sim_call(clock, document, model.base_url) as call:
            await call.idle()

            async def goodbye_started() -> None:
                while not [e for e in call.world.timeline.of_kind("say") if e.data.get("text") == GOODBYE]:
                    await clock.sleep(0.1)

            await within(clock, LONG, goodbye_started())
            await call.world.caller.caller_says("Wait, I'm still here!")
            outcome = await call.ended()
            return len(model.requests), call.said(), str(outcome.ended_reason), call.kinds()

    requests, said, ended, kinds = run_virtual(main)
    assert requests == 1  # no model request after the hang-up decision
    assert said == ["Hello, this is Frank.", GOODBYE]  # the goodbye heard in full, nothing after
    assert ended == "silence-timed-out"
    assert kinds.index("closing") < kinds.index("caller-said")  # said while the call was closing


# ---------------------------------------------------------------- item 9: the hard stop is hard

FINAL = "We are out of time, goodbye."


HARD_STOP = {"hard_stop_time": "10s", "hard_stop_prompt": "Time is up: say goodbye."}


def _warm_function(**transfer: Any) -> dict[str, Any]:
    return {
        "function": "transfer_to_supervisor",
        "description": "warm transfer",
        "parameters": {"type": "object", "properties": {"destination": {"type": "string"}}},
        "builtin": "transfer",
        "transfer": {"mode": "warm", "destinations": ["+15550002222"], **transfer},
    }


TO_SUPERVISOR = {
    "tool_calls": [{"name": "transfer_to_supervisor", "arguments": {"destination": "+15550002222"}}]
}


def _scenario(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


SLOW_WORK = {
    # A webhook that answers after 60 s.
    "webhook": {"web_hook_url": "https://hooks.example.com/slow"},
    # A function whose action holds the caller for 60 s.
    "hold": {"data_map": {"output": {"response": "Holding.", "action": [{"hold": 60}]}}},
    # A function whose action waits 60 s for the caller.
    "wait_seconds": {"data_map": {"output": {"response": "Waiting.", "action": [{"wait_seconds": 60}]}}},
}


@pytest.mark.parametrize("work", list(SLOW_WORK))
def test_hard_stop_does_not_wait_for_the_turn_in_progress(tmp_path: Path, work: str) -> None:
    function = {"function": "check_order", "description": "Check an order.", **SLOW_WORK[work]}
    scenario = {
        "name": f"hard stop during a 60 s {work}",
        "agent": agent(HARD_STOP, SWAIG={"functions": [function]}),
        "llm": [
            {"text": "Hi, this is Frank."},
            {"tool_calls": [{"name": "check_order", "arguments": {}}]},
            {"text": FINAL},
        ],
        "http": [
            {
                "method": "POST",
                "url": "https://hooks.example.com/slow",
                "json": {"response": "ok"},
                "delay": "60s",
            }
        ],
        "turns": [{"user": "Where is my order?"}, {"wait": "120s"}],
        "expect": {"ended": "exceeded-max-duration", "last_said": FINAL},
    }
    result = run_scenario_file(_scenario(tmp_path, scenario))
    assert result.error is None and result.failures == [], result.all_failures
    assert result.outcome is not None and result.outcome.hangup_at is not None
    # The call ends at the hard stop plus the last word's speech (virtual time), not 60 s later.
    assert result.outcome.hangup_at <= 10.0 + speech_seconds(FINAL) + 0.5
    kinds = [e.kind for e in result.outcome.timeline.events]
    assert "turn-preempted" in kinds


# The client retries a 500 twice before giving up; an empty reply is a single request.
@pytest.mark.parametrize("last", [[{"status": 500}] * 3, [{"text": ""}]], ids=["model-fails", "empty-reply"])
def test_the_hard_stops_last_words_are_a_goodbye_even_without_the_model(
    tmp_path: Path, last: list[dict[str, Any]]
) -> None:
    scenario = {
        "name": "the hard stop's model request fails or says nothing",
        "agent": agent(HARD_STOP),
        "llm": [{"text": "Hi, this is Frank."}, {"text": "Sure, let me explain."}, *last],
        "turns": [{"user": "Tell me everything."}, {"wait": "120s"}],
        "expect": {"ended": "exceeded-max-duration", "last_said": GOODBYE_TIME_UP},
    }
    result = run_scenario_file(_scenario(tmp_path, scenario))
    assert result.error is None and result.failures == [], result.all_failures
    assert result.outcome is not None
    said = [e.data.get("text") for e in result.outcome.timeline.events if e.kind == "fallback"]
    assert said == [GOODBYE_TIME_UP]  # and no "could you say that again?" before it


def test_hard_stop_with_a_prompt_during_a_warm_briefing(tmp_path: Path) -> None:
    scenario = {
        "name": "hard stop while the supervisor is briefed",
        "agent": agent(
            HARD_STOP, SWAIG={"functions": [_warm_function(consult_timeout=60, msg="Please hold.")]}
        ),
        "llm": {
            "agent": [
                {"text": "Hi, this is Frank."},
                TO_SUPERVISOR,
                {"text": FINAL},
            ],
            "consult": [{"text": "Hi Sam, I have a caller on hold."}],
        },
        "legs": {"+15550002222": {"after": "2s", "turns": []}},
        "turns": [{"user": "Supervisor, please."}, {"wait": "120s"}],
        "expect": {
            "ended": "exceeded-max-duration",
            "last_said": FINAL,
            "transfer": {"to": "+15550002222", "mode": "warm", "result": "cancelled"},
        },
    }
    result = run_scenario_file(_scenario(tmp_path, scenario))
    assert result.error is None and result.failures == [], result.all_failures
    outcome = result.outcome
    assert outcome is not None and outcome.hangup_at is not None
    assert outcome.hangup_at <= 10.0 + speech_seconds(FINAL) + 0.5
    supervisor_hangups = [e for e in outcome.timeline.events if e.kind == "hangup" and e.leg != "caller"]
    assert supervisor_hangups and supervisor_hangups[0].t <= 10.5  # nobody left alone on the line


# ---------------------------------------------------------------- item 10: recorded, never silent


def test_a_media_timeout_hangs_the_leg_up_and_says_why() -> None:
    async def main(clock: VirtualClock) -> tuple[bool, str | None, str | None, list[str]]:
        model = MisbehavingModel([text("Hello, this is Frank.")])
        async with model, sim_call(clock, agent(), model.base_url) as call:
            await call.idle()
            await call.world.caller.media_timeout()
            outcome = await call.ended()
            details = [str(e.data.get("detail")) for e in call.events("hangup")]
            return call.world.caller.ended, call.world.caller.ended_reason, outcome.ended_reason, details

    leg_ended, leg_reason, ended, details = run_virtual(main)
    assert leg_ended and leg_reason == "customer-ended-call"  # the leg itself was hung up
    assert ended == "customer-ended-call" and "media-timeout" in details


def _crash_in_add_user(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Conversation, text: str, t: float) -> None:
        raise RuntimeError("store exploded at postgresql://app:hunter2@db.example.com/calls")

    monkeypatch.setattr(Conversation, "add_user", boom)


@pytest.mark.parametrize("contain", [True, False])
def test_a_crash_apologises_and_records_pipeline_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, contain: bool
) -> None:
    _crash_in_add_user(monkeypatch)
    install_log_redaction()  # as every callgate command does

    async def main(clock: VirtualClock) -> tuple[list[str], str | None, list[str], str]:
        model = MisbehavingModel([text("Hello, this is Frank.")])
        async with model, sim_call(clock, agent(), model.base_url, contain_crashes=contain) as call:
            await call.idle()
            await call.world.caller.caller_says("Hi")
            try:
                await call.ended()
                raised = ""
            except RuntimeError as exc:
                raised = str(exc)
            outcome = call.runner.outcome
            details = [str(e.data.get("detail")) for e in call.events("hangup")]
            return call.said(), outcome.ended_reason, details, raised

    with caplog.at_level(logging.ERROR, logger="callgate.runtime.call_runner"):
        said, ended, details, raised = run_virtual(main)
    # The traceback is logged (caplog.text formats tracebacks too), without the password.
    assert "Traceback" in caplog.text and "hunter2" not in caplog.text
    assert said[-1] == GOODBYE_BROKEN
    assert ended == "pipeline-error"
    assert any("RuntimeError" in d and "hunter2" not in d and "postgresql://app:***@" in d for d in details)
    assert bool(raised) is not contain  # a scenario still sees the crash; a live call contains it


def test_chat_writes_a_record_when_the_call_crashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from callgate.cli.chat import converse, listed
    from callgate.swml.loader import parse_document

    _crash_in_add_user(monkeypatch)
    store = tmp_path / "calls.db"
    loaded = parse_document(agent(), source="<test>")
    with ModelThread({"agent": [{"text": "Hello, this is Frank."}]}) as model:
        monkeypatch.setenv("CALLGATE_LLM_URL", model.base_url("agent"))
        monkeypatch.setenv("CALLGATE_DB", str(store))
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        console = Console(record=True, width=200)
        outcome = asyncio.run(
            asyncio.wait_for(
                converse(loaded, console, "+15551230000", "+15559870000", "Ann", listed(["Hi"])), 120
            )
        )
    assert outcome.ended_reason == "pipeline-error"
    listing = run_cli(["calls", "list", "--json"], env={"CALLGATE_DB": str(store)})
    calls = json.loads(listing.stdout)
    assert len(calls) == 1 and calls[0]["ended_reason"] == "pipeline-error"


def test_within_keeps_a_cancellation_a_cancellation() -> None:
    async def main(clock: VirtualClock) -> tuple[bool, BaseException | None]:
        async def slow_to_stop() -> None:
            try:
                await clock.sleep(100)
            except asyncio.CancelledError:
                await clock.sleep(1)  # its clean-up takes a second
                raise

        outer = asyncio.create_task(within(clock, 5, slow_to_stop()))
        await clock.sleep(5.5)  # the deadline has passed; the work is cleaning up
        outer.cancel()
        await asyncio.wait({outer})
        return outer.cancelled(), None if outer.cancelled() else outer.exception()

    cancelled, error = run_virtual(main)
    assert cancelled and not isinstance(error, Deadline)


def test_an_illegal_warm_state_change_is_logged_and_recorded(caplog: pytest.LogCaptureFixture) -> None:
    warm = {"functions": [_warm_function()]}
    scripts = {
        "agent": [{"text": "Hi, this is Frank."}, TO_SUPERVISOR],
        "consult": [{"tool_calls": [{"name": "decline_transfer", "arguments": {"reason": "busy"}}]}],
    }

    async def main(clock: VirtualClock) -> list[dict[str, Any]]:
        async with (
            ScriptedModelServer(scripts) as server,
            sim_call(
                clock, agent(SWAIG=warm), server.base_url, legs={"+15550002222": {"after": "2s"}}
            ) as call,
        ):
            await call.idle()
            await call.world.caller.caller_says("Supervisor, please.")

            async def held() -> None:
                while not call.runner.caller_on_hold:
                    await clock.sleep(0.1)

            await within(clock, LONG, held())
            # Something else moves the call while the supervisor is dialled (as a hang-up would).
            call.runner.controller.state.to(CallState.ENDING)

            async def warm_failed() -> None:
                while not call.events("warm-failed"):
                    await clock.sleep(0.1)

            await within(clock, LONG, warm_failed())
            await call.world.caller.remote_hangup()
            await call.ended()
            return [dict(e.data) for e in call.events("warm-error")]

    with caplog.at_level(logging.WARNING, logger="callgate.control.warm.transfer"):
        errors = run_virtual(main)
    assert errors and "ending" in errors[0]["error"] and "active" in errors[0]["error"]
    assert any("cannot go from ending to active" in r.getMessage() for r in caplog.records)


def test_text_queued_right_after_cancel_is_spoken() -> None:
    async def main(clock: VirtualClock) -> list[str]:
        world = SimWorld(clock)
        await world.caller.answer()
        speaker = Speaker(world.caller, [])
        speaker.say_soon("This long sentence is cut off by the hard stop before it ends.")
        await clock.sleep(1)
        speaker.cancel()
        speaker.say_soon("Last words.")  # in the same moment: the cancelled worker has not stopped yet
        await within(clock, LONG, speaker.drain())
        return [u.text for u in world.utterances if not u.cut]

    assert run_virtual(main) == ["Last words."]
