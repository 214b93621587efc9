"""SignalWire's contexts and steps (`prompt.contexts`): where the conversation is, what the model is
told about it, which tools it has there, and which moves are allowed.

The machine is pure: it knows nothing of calls or speech. The session asks it for the prompt
section and tools of the current step, hands it the model's `next_step` / `change_context` calls
and the `change_step` / `change_context` actions, and carries out what a move returns (fillers to
speak, how the history changes on entering a context).

Rules (SignalWire's documentation; where it is silent, the SDK's behaviour):
- the call starts in context `default` (else the first one), at its first step;
- `valid_steps` lists where `next_step` may go (`next` is the following step); left out or empty, the
  following step; a step with `end: true` goes nowhere;
- `valid_contexts` (the step's, else its context's) lists where `change_context` may go;
- a step's `functions` is a whitelist (`"none"` or `[]`: no functions); left out, the previous
  step's set stays in force (at the start: every function);
- actions (`change_step`, `change_context`) move regardless of `valid_steps` / `valid_contexts`;
- a step with `gather_info` first asks its questions (`gather`): meanwhile the model has only
  `gather_submit` (and the open question's functions), cannot navigate, and is told only the
  question; once all are answered the step goes on as `completion_action` says.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from callgate.agent.gather import GATHER_SUBMIT, Gathering, Submission
from callgate.swml.models import ContextStep, Fillers, PromptContext, StepReset
from callgate.swml.pom import render_pom

NEXT_STEP = "next_step"
CHANGE_CONTEXT = "change_context"
NAVIGATION_TOOLS = frozenset({NEXT_STEP, CHANGE_CONTEXT, GATHER_SUBMIT})


class MoveBy(StrEnum):
    MODEL = "model"  # the model called next_step / change_context
    ACTION = "action"  # a function result's change_step / change_context action
    AUTO = "auto"  # skip_user_turn / skip_to_next_step advanced on its own
    GATHER = "gather_complete"  # a gather_info's completion_action


@dataclass(frozen=True)
class ContextEntry:
    """How entering a context changes the conversation (SignalWire's context entry parameters)."""

    context: str
    system_prompt: str | None = None
    user_prompt: str | None = None
    consolidate: bool = False
    full_reset: bool = False
    isolated: bool = False


@dataclass(frozen=True)
class Move:
    """The outcome of a navigation request. `refused` is set (and nothing moved) when it was not allowed."""

    context: str
    step: str
    from_context: str
    from_step: str
    by: MoveBy
    refused: str | None = None
    entry: ContextEntry | None = None  # set when the context changed
    fillers: list[str] = field(default_factory=list)  # exit fillers, then enter fillers

    @property
    def ok(self) -> bool:
        return self.refused is None

    def for_model(self) -> str:
        """The tool result the model gets."""
        if self.refused is not None:
            return f"Refused: {self.refused}"
        if self.entry is not None:
            return f"Now in context {self.context!r}, step {self.step!r}."
        return f"Now in step {self.step!r}."


def choose_fillers(fillers: Fillers | None, language: str) -> list[str]:
    """The phrases for `language` (exact code, then its base language, then `default`, then any)."""
    if not fillers:
        return []
    if isinstance(fillers, list) and all(isinstance(item, str) for item in fillers):
        return [str(item) for item in fillers]
    table: dict[str, list[str]] = {}
    for item in fillers if isinstance(fillers, list) else [fillers]:
        if isinstance(item, dict):
            for key, values in item.items():
                table.setdefault(str(key).lower(), [str(v) for v in values])
    code = language.lower()
    for key in (code, code.split("-")[0], "default"):
        if table.get(key):
            return table[key]
    return next((values for values in table.values() if values), [])


class StepMachine:
    def __init__(
        self,
        contexts: dict[str, PromptContext],
        *,
        render: Callable[[str], str] = lambda text: text,
        language: str = "en-US",
    ) -> None:
        if not contexts or not any(context.steps for context in contexts.values()):
            raise ValueError("prompt.contexts has no steps")
        self.contexts = contexts
        self._render = render
        self.language = language
        start = "default" if "default" in contexts and contexts["default"].steps else None
        self.context_name = start or next(name for name, c in contexts.items() if c.steps)
        self.step_index = 0
        # None: every function; else the whitelist in force.
        self.functions: frozenset[str] | None = None
        self._filler_turn = 0
        # The open gather_info of the current step, and what it did for the timeline to record.
        self.gathering: Gathering | None = None
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._apply_step_functions()

    # ------------------------------------------------------------ where we are

    @property
    def context(self) -> PromptContext:
        return self.contexts[self.context_name]

    @property
    def step(self) -> ContextStep:
        return self.context.steps[self.step_index]

    def _index_of(self, context: PromptContext, name: str) -> int | None:
        for index, step in enumerate(context.steps):
            if step.name == name:
                return index
        return None

    def _following(self) -> str | None:
        steps = self.context.steps
        return steps[self.step_index + 1].name if self.step_index + 1 < len(steps) else None

    def all_text(self) -> str:
        """Every step's text (the implicit hang-up tool looks for a request to hang up in it)."""
        texts = [step.text or render_pom(step.pom or []) for c in self.contexts.values() for step in c.steps]
        return "\n".join(texts)

    # ------------------------------------------------------------ what the model sees

    def step_targets(self) -> list[str]:
        """Step names `next_step` may go to from here."""
        step = self.step
        if step.end:
            return []
        allowed = step.valid_steps if step.valid_steps else self.context.valid_steps
        if not allowed:
            following = self._following()
            return [following] if following else []
        out: list[str] = []
        for name in allowed:
            target = self._following() if name == "next" else name
            if (
                target
                and target != step.name
                and target not in out
                and self._index_of(self.context, target) is not None
            ):
                out.append(target)
        return out

    def context_targets(self) -> list[str]:
        """Context names `change_context` may go to from here."""
        allowed = (
            self.step.valid_contexts if self.step.valid_contexts is not None else self.context.valid_contexts
        )
        return [name for name in allowed or [] if name in self.contexts and name != self.context_name]

    @property
    def asking(self) -> bool:
        """A gather_info question is open: the model may only answer it."""
        return self.gathering is not None and not self.gathering.done

    def allows_function(self, name: str) -> bool:
        if self.gathering is not None and self.gathering.question is not None:
            return name in (self.gathering.question.functions or [])
        return self.functions is None or name in self.functions

    def tools(self) -> list[dict[str, Any]]:
        """The navigation tools offered in this step (none when no move is possible); while a
        gather_info question is open, only `gather_submit`."""
        if self.gathering is not None and not self.gathering.done:
            return [self.gathering.tool()]
        tools: list[dict[str, Any]] = []
        steps = self.step_targets()
        if steps:
            tools.append(
                _tool(
                    NEXT_STEP,
                    "Move the conversation to the next step once the current step is complete.",
                    "step",
                    steps,
                    "the step to move to",
                )
            )
        contexts = self.context_targets()
        if contexts:
            tools.append(
                _tool(
                    CHANGE_CONTEXT,
                    "Switch the conversation to another context when the caller needs it.",
                    "context",
                    contexts,
                    "the context to switch to",
                )
            )
        return tools

    def prompt_section(self) -> str:
        """What the system prompt says about the current context and step."""
        parts: list[str] = []
        context_text = self._context_prompt(self.context)
        if context_text:
            parts.append(context_text)
        step = self.step
        if self.gathering is not None and not self.gathering.done:
            parts.append(f"## Current step: {step.name}\n{self.gathering.instruction(self._render)}")
            return "\n\n".join(parts)
        body = step.text if step.text is not None else render_pom(step.pom or [])
        parts.append(f"## Current step: {step.name}\n{self._render(body).strip()}")
        if self.gathering is not None and self.gathering.answers:
            answers = json.dumps(self.gathering.answers, ensure_ascii=False)
            parts.append(f"The information gathered in this step: {answers}")
        if step.step_criteria:
            parts.append(f"Step criteria (the step is complete when): {self._render(step.step_criteria)}")
        targets = self.step_targets()
        if targets:
            names = ", ".join(targets)
            parts.append(f"When the step is complete, call {NEXT_STEP} with one of these steps: {names}.")
        elif step.end:
            parts.append("This is the last step: the conversation ends after your reply.")
        contexts = self.context_targets()
        if contexts:
            parts.append(f"To change the subject, call {CHANGE_CONTEXT} with one of: {', '.join(contexts)}.")
        return "\n\n".join(parts)

    def _context_prompt(self, context: PromptContext) -> str:
        text = context.text if context.text is not None else context.prompt
        if text is None and context.pom:
            text = render_pom(context.pom)
        return self._render(text).strip() if text else ""

    # ------------------------------------------------------------ moving

    def next_step(self, name: str | None, by: MoveBy = MoveBy.MODEL) -> Move:
        """The model's `next_step {step}` (checked against valid_steps)."""
        if self.asking:
            return self._refuse(name or "", by, "answer the open question with gather_submit first")
        targets = self.step_targets()
        wanted = name if name and name != "next" else (self._following() or "")
        if wanted not in targets:
            why = f"step {wanted or name!r} is not reachable from step {self.step.name!r}"
            return self._refuse(wanted or (name or ""), by, why, targets, "steps")
        return self._go_step(wanted, by)

    def change_step(self, name: str) -> Move:
        """A `change_step` action: any step of the current context."""
        if self._index_of(self.context, name) is None:
            return self._refuse(name, MoveBy.ACTION, f"no step {name!r} in context {self.context_name!r}")
        return self._go_step(name, MoveBy.ACTION)

    def auto_advance(self) -> Move | None:
        """skip_user_turn / skip_to_next_step: go on to the following step without the caller."""
        step = self.step
        if self.asking or step.end or not (step.skip_user_turn is True or step.skip_to_next_step):
            return None
        targets = self.step_targets()
        if not targets:
            return None
        return self._go_step(targets[0], MoveBy.AUTO)

    def change_context(self, name: str, by: MoveBy = MoveBy.MODEL) -> Move:
        if name not in self.contexts or not self.contexts[name].steps:
            return self._refuse(name, by, f"no context {name!r}", self.context_targets(), "contexts")
        if by is MoveBy.MODEL and self.asking:
            return self._refuse(name, by, "answer the open question with gather_submit first")
        if by is MoveBy.MODEL and name not in self.context_targets():
            why = f"context {name!r} is not reachable from step {self.step.name!r}"
            return self._refuse(name, by, why, self.context_targets(), "contexts")
        if name == self.context_name and by is MoveBy.MODEL:
            return self._refuse(name, by, f"already in context {name!r}")
        old_context, old_step = self.context_name, self.step.name
        exit_fillers = choose_fillers(self.context.exit_fillers, self.language)
        reset: StepReset | None = self.step.reset
        self.context_name, self.step_index = name, 0
        target = self.context
        enter_fillers = choose_fillers(target.enter_fillers, self.language)
        entry = ContextEntry(
            context=name,
            system_prompt=_pick(reset.system_prompt if reset else None, target.system_prompt),
            user_prompt=_pick(reset.user_prompt if reset else None, target.user_prompt),
            consolidate=bool(reset.consolidate if reset and reset.consolidate else target.consolidate),
            full_reset=bool(reset.full_reset if reset and reset.full_reset else target.full_reset),
            isolated=target.isolated,
        )
        if entry.system_prompt is not None:
            entry = ContextEntry(
                context=entry.context,
                system_prompt=self._render(entry.system_prompt),
                user_prompt=entry.user_prompt,
                consolidate=entry.consolidate,
                full_reset=entry.full_reset,
                isolated=entry.isolated,
            )
        self._apply_step_functions()
        fillers = [self._one(exit_fillers), self._one(enter_fillers)]
        return Move(
            context=name,
            step=self.step.name,
            from_context=old_context,
            from_step=old_step,
            by=by,
            entry=entry,
            fillers=[text for text in fillers if text],
        )

    def _go_step(self, name: str, by: MoveBy) -> Move:
        index = self._index_of(self.context, name)
        assert index is not None
        old = self.step.name
        self.step_index = index
        self._apply_step_functions()
        return Move(self.context_name, name, self.context_name, old, by)

    def _refuse(
        self, name: str, by: MoveBy, why: str, allowed: list[str] | None = None, what: str = ""
    ) -> Move:
        if allowed is not None:
            why += (
                f"; allowed {what}: {', '.join(allowed)}"
                if allowed
                else f"; no {what} can be reached from here"
            )
        return Move(self.context_name, self.step.name, self.context_name, self.step.name, by, refused=why)

    def _apply_step_functions(self) -> None:
        """Entering a step: its function whitelist, and its gather_info questions from the first."""
        self._start_gather()
        chosen = self.step.functions
        if chosen is None:
            return  # left out: the previous step's set stays
        if isinstance(chosen, str):
            self.functions = frozenset() if chosen.strip().lower() == "none" else frozenset({chosen})
        else:
            self.functions = frozenset(str(name) for name in chosen)

    # ------------------------------------------------------------ gather_info

    def _start_gather(self) -> None:
        info = self.step.gather_info
        self.gathering = Gathering(info) if info is not None and info.questions else None
        if self.gathering is None or info is None:
            return
        where: dict[str, Any] = {"context": self.context_name, "step": self.step.name}
        where["step_index"] = self.step_index
        start: dict[str, Any] = {**where, "total_questions": len(info.questions)}
        if info.output_key:
            start["output_key"] = info.output_key
        self.events.append(("gather-start", start))
        self._question_event()

    def _question_event(self) -> None:
        gathering = self.gathering
        if gathering is None or gathering.question is None:
            return
        question = gathering.question
        self.events.append(
            (
                "gather-question",
                {
                    "context": self.context_name,
                    "step": self.step.name,
                    "key": question.key,
                    "question_index": gathering.index,
                    "question_type": question.type,
                    "requires_confirm": bool(question.confirm),
                },
            )
        )

    def gather_submit(self, arguments: dict[str, Any]) -> tuple[Submission | None, Move | None]:
        """The model's `gather_submit`: (what it did, the move its completion made). (None, None)
        when no question is open."""
        gathering = self.gathering
        if gathering is None or gathering.done:
            return None, None
        submission = gathering.submit(arguments)
        where: dict[str, Any] = {"context": self.context_name, "step": self.step.name, "key": submission.key}
        where |= {"question_index": submission.question_index, "attempt": submission.attempt}
        if submission.rejected is not None:
            self.events.append(("gather-reject", {**where, "reason": submission.rejected}))
            return submission, None
        self.events.append(("gather-answer", {**where, "confirmed": submission.confirm}))
        if not submission.complete:
            self._question_event()
            return submission, None
        action = gathering.info.completion_action
        done: dict[str, Any] = {
            "context": self.context_name,
            "step": self.step.name,
            "answered": len(gathering.answers),
        }
        if gathering.info.output_key:
            done["output_key"] = gathering.info.output_key
        if action:
            done["completion_action"] = action
        self.events.append(("gather-complete", done))
        target = self._following() if action == "next_step" else action
        if target is None or self._index_of(self.context, target) is None:
            return submission, None  # back to the step's own instructions, answers in hand
        return submission, self._go_step(target, MoveBy.GATHER)

    def _one(self, fillers: list[str]) -> str:
        if not fillers:
            return ""
        text = fillers[self._filler_turn % len(fillers)]
        self._filler_turn += 1
        return text


def _pick(first: str | None, second: str | None) -> str | None:
    return first if first is not None else second


def _tool(name: str, description: str, argument: str, values: list[str], about: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {argument: {"type": "string", "enum": values, "description": about}},
                "required": [argument],
            },
        },
    }
