"""The contexts-and-steps machine: where next_step / change_context may go, whitelists, entries."""

from __future__ import annotations

from typing import Any

import pytest

from callgate.agent.history import Conversation
from callgate.agent.steps import MoveBy, StepMachine, choose_fillers
from callgate.swml.models import Prompt

CONTEXTS: dict[str, Any] = {
    "default": {
        "steps": [
            {"name": "greet", "text": "Greet.", "functions": "none", "valid_contexts": ["billing"]},
            {
                "name": "order",
                "text": "Take the order.",
                "functions": ["add_pizza"],
                "valid_steps": ["confirm", "greet"],
            },
            {"name": "extras", "text": "Offer extras."},
            {"name": "confirm", "text": "Confirm.", "end": True, "valid_steps": ["greet"]},
        ]
    },
    "billing": {
        "isolated": True,
        "system_prompt": "You are Bill for ${caller}.",
        "enter_fillers": [{"default": ["To billing."]}, {"en-US": ["Billing, one moment."]}],
        "valid_contexts": ["default"],
        "steps": [
            {"name": "help", "text": "Help with bills.", "skip_user_turn": True},
            {"name": "bye", "text": "Bye."},
        ],
    },
}


def machine(**overrides: Any) -> StepMachine:
    prompt = Prompt.model_validate({"contexts": {**CONTEXTS, **overrides}})
    assert prompt.contexts is not None
    return StepMachine(prompt.contexts, render=lambda text: text.replace("${caller}", "Ann"))


def test_starts_in_default_first_step_with_sequential_next() -> None:
    steps = machine()
    assert (steps.context_name, steps.step.name) == ("default", "greet")
    assert steps.step_targets() == ["order"]  # no valid_steps: the following step
    assert steps.context_targets() == ["billing"]
    assert steps.functions == frozenset()  # "none"
    names = [tool["function"]["name"] for tool in steps.tools()]
    assert names == ["next_step", "change_context"]
    assert steps.tools()[0]["function"]["parameters"]["properties"]["step"]["enum"] == ["order"]
    assert "## Current step: greet" in steps.prompt_section()


def test_next_step_checks_valid_steps_and_refuses_with_the_allowed_list() -> None:
    steps = machine()
    refused = steps.next_step("confirm")
    assert not refused.ok and "allowed steps: order" in (refused.refused or "")
    assert steps.step.name == "greet"
    assert steps.next_step("order").ok
    assert steps.functions == frozenset({"add_pizza"})
    assert steps.step_targets() == ["confirm", "greet"]
    assert not steps.next_step("extras").ok
    moved = steps.next_step("confirm")
    assert moved.ok and moved.from_step == "order"
    # end: true goes nowhere, whatever valid_steps says; the whitelist carries over (left out).
    assert steps.step_targets() == [] and steps.tools() == []
    assert steps.functions == frozenset({"add_pizza"})


def test_next_as_a_valid_step_is_the_following_one() -> None:
    steps = machine(
        other={"steps": [{"name": "a", "text": "A", "valid_steps": ["next"]}, {"name": "b", "text": "B"}]}
    )
    steps.change_context("other", MoveBy.ACTION)
    assert steps.step_targets() == ["b"]
    assert steps.next_step("next").ok and steps.step.name == "b"


def test_change_context_model_and_action() -> None:
    steps = machine()
    assert not steps.change_context("nowhere").ok
    steps.next_step("order")
    refused = steps.change_context("billing")  # the order step has no valid_contexts
    assert not refused.ok and steps.context_name == "default"
    forced = steps.change_context("billing", MoveBy.ACTION)  # actions move regardless
    assert forced.ok and (steps.context_name, steps.step.name) == ("billing", "help")
    assert forced.entry is not None and forced.entry.isolated
    assert forced.entry.system_prompt == "You are Bill for Ann."
    assert forced.fillers == ["Billing, one moment."]  # en-US before default


def test_change_step_action_ignores_valid_steps_but_not_unknown_names() -> None:
    steps = machine()
    assert steps.change_step("confirm").ok and steps.step.name == "confirm"
    assert not steps.change_step("dessert").ok


def test_skip_user_turn_advances_on_its_own() -> None:
    steps = machine()
    assert steps.auto_advance() is None
    steps.change_context("billing", MoveBy.ACTION)
    move = steps.auto_advance()
    assert move is not None and move.by is MoveBy.AUTO and steps.step.name == "bye"


def test_choose_fillers_forms() -> None:
    assert choose_fillers({"en": ["Hi"], "default": ["Yo"]}, "en-GB") == ["Hi"]
    assert choose_fillers([{"default": ["Yo"]}], "fr-FR") == ["Yo"]
    assert choose_fillers(["a", "b"], "de") == ["a", "b"]
    assert choose_fillers(None, "en-US") == []


@pytest.mark.parametrize(
    ("entry", "messages", "system"),
    [
        ({"isolated": True}, [], "base"),
        ({"system_prompt": "New.", "full_reset": True}, [], "New."),
        ({"system_prompt": "Also this."}, ["user", "assistant", "system"], "base"),
        ({"consolidate": True}, ["system"], "base"),
        ({"user_prompt": "I need billing.", "isolated": True}, ["user"], "base"),
    ],
)
def test_context_entry_on_the_history(entry: dict[str, Any], messages: list[str], system: str) -> None:
    conversation = Conversation(system_prompt="base")
    conversation.add_user("Hi", 0.0)
    conversation.add_assistant("Hello", [], 0.0)
    conversation.enter_context(
        system_prompt=entry.get("system_prompt"),
        user_prompt=entry.get("user_prompt"),
        consolidate=entry.get("consolidate", False),
        full_reset=entry.get("full_reset", False),
        isolated=entry.get("isolated", False),
        t=1.0,
    )
    assert [m["role"] for m in conversation.messages] == messages
    assert conversation.system_prompt == system
    if entry.get("consolidate"):
        assert "Customer: Hi" in conversation.messages[0]["content"]
