"""prompt.contexts: a step list naming a missing step or context is an error with its path and line."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from callgate.swml import DocumentError, load_document, load_text

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "agents"

BROKEN = """
version: 1.0.0
sections:
  main:
    - ai:
        prompt:
          contexts:
            default:
              valid_contexts: [sales, nowhere]
              steps:
                - name: greet
                  text: Hi.
                  valid_steps: [next, order, checkout]
                - name: order
                  text: Order.
                  valid_contexts: [support]
                - name: order
                  pom: [{title: Again, body: dup}]
                - name: next
                  text: reserved
                - name: empty
            sales:
              steps: []
"""


def test_missing_steps_and_contexts_are_errors_with_paths_and_lines() -> None:
    with pytest.raises(DocumentError) as info:
        load_text(dedent(BROKEN).lstrip("\n"), source="agent.yaml")
    found = {(e.path, e.line): e.message for e in info.value.errors}
    base = "sections.main[0].ai.prompt.contexts"
    assert found[(f"{base}.default.valid_contexts[1]", 8)] == "no context named 'nowhere'"
    assert found[(f"{base}.default.steps[0].valid_steps[2]", 12)] == (
        "no step named 'checkout' in context 'default'"
    )
    assert found[(f"{base}.default.steps[1].valid_contexts[0]", 15)] == "no context named 'support'"
    assert "duplicate step name 'order'" in found[(f"{base}.default.steps[2].name", 16)]
    assert "reserved" in found[(f"{base}.default.steps[3].name", 18)]
    assert "neither `text` nor `pom`" in found[(f"{base}.default.steps[4]", 20)]
    assert "has no steps" in found[(f"{base}.sales.steps", 22)]
    assert len(found) == 7  # `next` and `order` are fine


def test_unknown_step_function_is_a_warning_and_gather_info_is_honoured_silently() -> None:
    text = """
    version: 1.0.0
    sections:
      main:
        - ai:
            prompt:
              contexts:
                default:
                  steps:
                    - name: a
                      text: A
                      functions: [lookup]
                      gather_info: {questions: [{key: name, question: "Your name?"}]}
    """
    result = load_text(dedent(text).lstrip("\n"), source="agent.yaml")
    warnings = {w.path: w.message for w in result.warnings}
    base = "sections.main[0].ai.prompt.contexts.default.steps[0]"
    assert warnings == {f"{base}.functions[0]": "no function named 'lookup'"}


BROKEN_GATHER = """
version: 1.0.0
sections:
  main:
    - ai:
        prompt:
          contexts:
            default:
              steps:
                - name: ask
                  gather_info:
                    completion_action: checkout
                    questions:
                      - {key: name, question: "Your name?", type: date, functions: [nope]}
                      - {key: name, question: "Again?"}
                - name: last
                  gather_info: {completion_action: next_step, questions: []}
"""


def test_broken_gather_info_is_an_error_with_its_path() -> None:
    with pytest.raises(DocumentError) as info:
        load_text(dedent(BROKEN_GATHER).lstrip("\n"), source="agent.yaml")
    found = {(e.path, e.line): e.message for e in info.value.errors}
    base = "sections.main[0].ai.prompt.contexts.default.steps"
    assert found == {
        (f"{base}[0].gather_info.questions[1].key", 14): "duplicate gather_info question key 'name'",
        (f"{base}[0].gather_info.completion_action", 11): "no step named 'checkout' in this context",
        (f"{base}[1].gather_info.questions", 16): "gather_info has no questions",
        (f"{base}[1].gather_info.completion_action", 16): (
            "`next_step` but this is the last step of its context"
        ),
    }
    warned = {w.path: w.message for w in info.value.issues if w not in info.value.errors}
    assert warned[f"{base}[0].gather_info.questions[0].type"].startswith("unknown answer type 'date'")
    assert warned[f"{base}[0].gather_info.questions[0].functions[0]"] == "no function named 'nope'"


@pytest.mark.parametrize("name", ["contexts_pizza.yaml", "contexts_support.yaml"])
def test_example_context_agents_validate_cleanly(name: str) -> None:
    result = load_document(EXAMPLES / name)
    assert result.warnings == []
