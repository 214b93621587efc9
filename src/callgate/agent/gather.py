"""A step's `gather_info` (the signalwire-agents SDK's "gather info mode"), as SignalWire runs it.

The questions are asked one at a time: while a question is open the model is told only that
question (the gather `prompt` as a preamble, the question, its type, whether it must be confirmed,
its own `prompt`) and is offered only SignalWire's `gather_submit` tool plus the question's own
`functions`. An accepted answer goes to global_data (under `output_key`, else at the top level) and
the next question replaces the instruction. `gather_submit` leaves no tool call or tool result in the
history the model sees (SignalWire records it in its system log). A question with `confirm` takes an
answer only with `confirmed_by_user: "true"`; anything else is rejected and the model is told to read
the answer back first. Pure: no call, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from callgate.swml.models import GatherInfo, GatherQuestion

GATHER_SUBMIT = "gather_submit"

MISSING_ANSWER = "missing_answer"
CONFIRMATION_REQUIRED = "confirmation_required"

_INTEGER = re.compile(r"[+-]?\d+")
_TRUE = {"true", "yes", "y"}
_FALSE = {"false", "no", "n"}


@dataclass(frozen=True)
class Submission:
    """What one `gather_submit` did. `rejected` names why it was not taken (nothing stored)."""

    question_index: int
    key: str
    attempt: int
    confirm: bool
    answer: Any = None
    rejected: str | None = None
    complete: bool = False

    def for_model(self) -> str:
        """The function's result, as the swaig log records it (the model itself never sees it)."""
        if self.rejected == CONFIRMATION_REQUIRED:
            return "Rejected: confirm the answer with the user before submitting it."
        if self.rejected is not None:
            return "Rejected: no answer was given."
        return "All questions are answered." if self.complete else "Answer recorded."


@dataclass
class Gathering:
    """The questions of one step, and which one is open."""

    info: GatherInfo
    index: int = 0
    attempt: int = 0
    rejection: str | None = None
    answers: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.index >= len(self.info.questions)

    @property
    def question(self) -> GatherQuestion | None:
        return None if self.done else self.info.questions[self.index]

    def submit(self, arguments: dict[str, Any]) -> Submission:
        question = self.question
        if question is None:
            raise ValueError("no question is open")
        answer = _typed(arguments.get("answer"), question.type)
        index, attempt, confirm = self.index, self.attempt, bool(question.confirm)
        reason: str | None = None
        if answer is None:
            reason = MISSING_ANSWER
        elif question.confirm and str(arguments.get("confirmed_by_user", "")).strip().lower() != "true":
            reason = CONFIRMATION_REQUIRED
        if reason is not None:
            self.attempt += 1
            self.rejection = reason
            return Submission(index, question.key, attempt, confirm, answer, rejected=reason)
        self.answers[question.key] = answer
        self.index += 1
        self.attempt = 0
        self.rejection = None
        return Submission(index, question.key, attempt, confirm, answer, complete=self.done)

    def store(self, global_data: dict[str, Any], key: str, answer: Any) -> None:
        """Write one answer where the gather keeps them."""
        if self.info.output_key:
            target = global_data.get(self.info.output_key)
            if not isinstance(target, dict):
                target = global_data[self.info.output_key] = {}
            target[key] = answer
        else:
            global_data[key] = answer

    def instruction(self, render: Callable[[str], str]) -> str:
        """The open question as the model is told it (SignalWire's wording where the SDK shows it)."""
        question = self.question
        assert question is not None
        lines: list[str] = []
        if self.info.prompt:
            lines.append(render(self.info.prompt).strip())
        lines.append(f'Ask the user: "{render(question.question).strip()}"')
        if question.type != "string":
            lines.append(f"The answer must be a {question.type} value.")
        if question.confirm:
            lines.append(
                "You MUST confirm the answer with the user before submitting: read it back, and call "
                'gather_submit with confirmed_by_user "true" only once the user has said it is right.'
            )
        if question.prompt:
            lines.append(render(question.prompt).strip())
        if self.rejection == CONFIRMATION_REQUIRED:
            lines.append("Your last answer was not accepted: it has not been confirmed by the user yet.")
        elif self.rejection == MISSING_ANSWER:
            lines.append("Your last gather_submit had no answer.")
        lines.append(f"When you have the answer, call the {GATHER_SUBMIT} function.")
        lines.append("Do not ask the user any other questions.")
        return "\n".join(line for line in lines if line)

    def tool(self) -> dict[str, Any]:
        """`gather_submit` for the open question: `answer` of its type, plus `confirmed_by_user` when it
        must be confirmed."""
        question = self.question
        assert question is not None
        kind = question.type if question.type in ("string", "integer", "number", "boolean") else "string"
        properties: dict[str, Any] = {
            "answer": {"type": kind, "description": f"The user's answer to: {question.question}"}
        }
        required = ["answer"]
        if question.confirm:
            properties["confirmed_by_user"] = {
                "type": "string",
                "enum": ["true", "false"],
                "description": "true only once the user has confirmed the answer you read back",
            }
            required.append("confirmed_by_user")
        return {
            "type": "function",
            "function": {
                "name": GATHER_SUBMIT,
                "description": "Submit the user's answer to the current question.",
                "parameters": {"type": "object", "properties": properties, "required": required},
            },
        }


def _typed(value: Any, kind: str) -> Any:
    """The answer as its question's type when the model sent it as text; None when there is none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        return value
    text = value.strip()
    if kind == "integer" and _INTEGER.fullmatch(text):
        return int(text)
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            return value
        return int(number) if number.is_integer() and "." not in text else number
    if kind == "boolean" and text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    return value
