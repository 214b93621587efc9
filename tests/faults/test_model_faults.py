"""A misbehaving model never leaves the caller in silence (issue 10, item 7): a reply trickling a
word every 5 s forever, an empty reply, a tool call without a name, a model that calls a function
every time — each ends in the spoken fallback and a timeline entry. Real engine, sim channel,
virtual time; the model is a real OpenAI-protocol streaming server on loopback."""

from __future__ import annotations

import pytest

from callgate.llm.types import FALLBACK_AFTER_CUT, FALLBACK_NO_REPLY
from callgate.telephony.clock import VirtualClock, run_virtual

from .misbehaving_model import (
    Behaviour,
    MisbehavingModel,
    cut,
    empty,
    garbage,
    stall,
    status,
    text,
    tool_call,
    trickle,
)
from .sim_call import agent, sim_call

LOOKUP = {
    "functions": [
        {
            "function": "lookup",
            "description": "Look something up.",
            "parameters": {"type": "object", "properties": {}},
            "data_map": {"output": {"response": "Nothing found."}},
        }
    ]
}


def _trickled_call(params: dict[str, object], word: str) -> tuple[list[str], list[str], list[float], str]:
    async def main(clock: VirtualClock) -> tuple[list[str], list[str], list[float], str]:
        model = MisbehavingModel([trickle(word, every=5.0), text("Sure.")])
        async with model, sim_call(clock, agent(params), model.base_url) as call:
            await call.idle()  # ends only because the reply is bounded
            errors = call.events("model-error")
            await call.world.caller.remote_hangup()
            outcome = await call.ended()
            return (
                call.said(),
                [str(e.data["message"]) for e in errors],
                [e.t for e in errors],
                str(outcome.ended_reason),
            )

    return run_virtual(main)


def test_a_reply_trickling_words_forever_is_abandoned_for_the_fallback() -> None:
    said, errors, times, ended = _trickled_call({}, "and")
    assert len(errors) == 1 and "timeout" in errors[0]
    assert times[0] <= 45.0 + 1e-6  # the whole-reply bound at the latest (virtual time)
    assert said[-1] == FALLBACK_AFTER_CUT  # words came, so: "lost my train of thought"
    assert ended == "customer-ended-call"


def test_a_trickle_of_whole_sentences_is_bounded_as_a_whole_reply() -> None:
    # A sentence every 5 s keeps the speechless bound from firing; the whole-reply bound does.
    said, errors, times, _ = _trickled_call({}, "Hmm.")
    assert "not finished after 45 s" in errors[0] and times[0] == pytest.approx(45.0)
    assert "Hmm." in said and said[-1] == FALLBACK_AFTER_CUT


def test_reply_bounds_are_params() -> None:
    said, errors, times, _ = _trickled_call({"reply_speechless_timeout": 0, "reply_timeout": 12000}, "and")
    assert "not finished after 12 s" in errors[0] and times[0] == pytest.approx(12.0)
    assert said[-1] == FALLBACK_AFTER_CUT


def _opening(
    behaviours: list[Behaviour], document: dict[str, object] | None = None
) -> tuple[list[str], list[str], int]:
    async def main(clock: VirtualClock) -> tuple[list[str], list[str], int]:
        model = MisbehavingModel(behaviours)
        async with model, sim_call(clock, document or agent(), model.base_url) as call:
            await call.idle()
            return call.said(), call.kinds(), len(model.requests)

    return run_virtual(main)


def test_an_empty_reply_is_recorded_and_answered_with_the_fallback() -> None:
    said, kinds, _ = _opening([empty()])
    assert "empty-reply" in kinds and "fallback" in kinds
    assert said == [FALLBACK_NO_REPLY]


def test_a_tool_call_without_a_name_is_recorded_and_answered_with_the_fallback() -> None:
    said, kinds, requests = _opening([tool_call("")])
    assert "tool-call-without-name" in kinds and "empty-reply" in kinds
    assert said == [FALLBACK_NO_REPLY] and requests == 1


def test_endless_tool_rounds_end_the_turn_with_something_said() -> None:
    said, kinds, requests = _opening([tool_call("lookup")], agent(SWAIG=LOOKUP))
    assert requests == 8  # max_tool_rounds
    assert "tool-rounds-exhausted" in kinds
    assert said == [FALLBACK_NO_REPLY]
    assert kinds.index("fallback") > kinds.index("tool-rounds-exhausted")


# ---------------------------------------------------------------- the matrix

MATRIX: dict[str, list[Behaviour]] = {
    "trickle-words": [trickle("and")],
    "trickle-sentences": [trickle("Hmm.")],
    "empty": [empty()],
    "nameless-tool-call": [tool_call("")],
    "endless-tool-calls": [tool_call("lookup")],
    "http-500": [status(500)],
    "http-429": [status(429)],
    "cut-mid-reply": [cut("Well, let me see")],
    "not-json": [garbage()],
    "stalled": [stall()],
}


@pytest.mark.parametrize("case", list(MATRIX))
def test_fault_matrix_no_crash_no_hang_no_silent_turn(case: str) -> None:
    """Every misbehaviour, on the opening turn and again when the caller speaks: no crash, no hang
    (each wait is bounded in virtual time), and every turn says something."""

    async def main(clock: VirtualClock) -> tuple[int, int, int, list[str]]:
        model = MisbehavingModel(MATRIX[case])
        async with model, sim_call(clock, agent(SWAIG=LOOKUP), model.base_url) as call:
            await call.idle()
            opening = len(call.said())
            if not call.runner.ended.is_set():
                await call.world.caller.caller_says("Hello?")
                await clock.sleep(0.5)
                await call.idle()
            after = len(call.said())
            ended = call.runner.ended.is_set()
            await call.world.caller.remote_hangup()
            await call.ended()
            return opening, after, ended, call.kinds()

    opening, after, ended, kinds = run_virtual(main)
    assert "crash" not in kinds
    assert opening >= 1  # the opening turn said something
    assert ended or after > opening  # so did the answer to the caller (or the call said goodbye)
