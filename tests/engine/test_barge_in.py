"""Barge-in on the sim channel: the caller's words cut the agent, the history keeps what was heard."""

from __future__ import annotations

from pathlib import Path

from callgate.agent.barge import BargePolicy
from callgate.agent.history import Conversation
from callgate.llm.types import ToolCall
from callgate.scenario.runner import run_scenario_file

SCENARIOS = Path(__file__).resolve().parents[2] / "examples" / "scenarios"


def test_policy_follows_signalwire_values() -> None:
    assert BargePolicy.from_params(None, None) == BargePolicy(enabled=True, min_words=1)
    for off in (False, "", "false", "FALSE"):
        assert not BargePolicy.from_params(off, None).enabled
    for on in (True, "complete", "partial", "complete,partial"):
        assert BargePolicy.from_params(on, None).enabled
    policy = BargePolicy.from_params(True, "3")
    assert not policy.interrupts("uh huh")
    assert policy.interrupts("wait a second")
    assert not BargePolicy.from_params(False, 1).interrupts("stop stop stop")
    assert BargePolicy.from_params(True, "lots").min_words == 1


def test_policy_counts_partials_or_complete_utterances_as_enable_barge_says() -> None:
    # One parser (swml.barge) for the agent and the speech layer.
    assert BargePolicy.from_params(None, None).wants_partials
    complete = BargePolicy.from_params("complete", 1)
    assert not complete.wants_partials
    assert not complete.interrupts("wait", final=False) and complete.interrupts("wait", final=True)
    partial = BargePolicy.from_params("partial", 2)
    assert partial.wants_partials
    assert partial.interrupts("wait, stop", final=False) and not partial.interrupts("wait, stop", final=True)
    assert not partial.interrupts("wait", final=False)  # barge_min_words counts words, not commas
    assert not BargePolicy.from_params("", None).wants_partials
    assert BargePolicy.from_params("sometimes", None) == BargePolicy()  # SignalWire's default


def test_history_keeps_only_the_words_heard() -> None:
    conversation = Conversation(system_prompt="s")
    conversation.add_user("hours?", 0.0)
    since = len(conversation.messages)
    conversation.add_assistant("We are open from nine. On Saturdays at ten.", [], 1.0)
    conversation.add_assistant("More text nobody heard.", [], 2.0)
    call = ToolCall(id="c1", name="lookup", arguments="{}")
    conversation.add_assistant("Also unheard.", [call], 3.0)
    conversation.keep_heard(since, "We are open from", 4.0)
    assistant = [m for m in conversation.messages if m["role"] == "assistant"]
    assert assistant[0]["content"] == "We are open from"
    assert len(assistant) == 2  # the unheard text-only reply is gone
    assert assistant[1]["content"] is None and assistant[1]["tool_calls"][0]["id"] == "c1"
    assert conversation.raw_log[-1] == {
        "role": "assistant",
        "content": "We are open from",
        "timestamp": 4.0,
        "barge_in": True,
    }


def test_scenario_cut_records_what_was_heard() -> None:
    result = run_scenario_file(SCENARIOS / "barge_in_cuts_agent.yaml")
    assert result.passed, result.all_failures
    assert result.outcome is not None
    timeline = result.outcome.timeline
    assert len(timeline.of_kind("barge-in")) == 1
    (heard,) = timeline.of_kind("barge-in-heard")
    spoken = heard.data["heard"]
    assert spoken.startswith("We are open") and "Saturdays" not in spoken
    (cut,) = timeline.of_kind("say-cut")
    assert cut.data["why"] == "barge-in" and cut.data["heard"] == spoken


def test_goodbye_is_never_cut() -> None:
    result = run_scenario_file(SCENARIOS / "barge_in_goodbye_not_cut.yaml")
    assert result.passed, result.all_failures
    assert result.outcome is not None
    assert not result.outcome.timeline.of_kind("barge-in")
    assert not result.outcome.timeline.of_kind("say-cut")
