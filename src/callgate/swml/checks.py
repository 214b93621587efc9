"""Warnings (and a few errors) about an `ai` verb that parsed: unknown fields, private webhook URLs,
conflicting function settings, unknown actions. Nothing here fetches or resolves anything."""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from callgate.swml.errors import IssueCollector
from callgate.swml.known import KNOWN_ACTIONS, KNOWN_EXTRA_FIELDS, KNOWN_NATIVE_FUNCTIONS, KNOWN_PARAMS
from callgate.swml.lines import Loc
from callgate.swml.models import AI, GATHER_TYPES, DataMap, Function, GatherInfo, Output, Params
from callgate.swml.params_support import audible_difference

# Validates a nested SWML document (an action's `SWML` value) found at a path.
SwmlCheck = Callable[[Any, Loc], None]

# Actions SignalWire applies and callgate only records: each changes how the rest of the call sounds.
NOT_APPLIED_ACTIONS: dict[str, str] = {
    "settings": "params are not changed mid-call (swaig_allow_settings); the caller hears the "
    "document's own settings",
    "end_of_speech_timeout": "the end-of-speech timeout is not changed mid-call",
    "speech_event_timeout": "the speech event timeout is not changed mid-call",
}

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_ai(
    ai: AI,
    loc: Loc,
    issues: IssueCollector,
    *,
    allowed_hosts: Iterable[str] = (),
    check_swml: SwmlCheck | None = None,
) -> None:
    """Report everything suspicious about a parsed `ai` verb found at `loc`."""
    _unknown_fields(ai, loc, issues)
    _prompt(ai, loc, issues)
    _contexts(ai, loc, issues)
    _ignored_params(ai, loc, issues)
    _functions(ai, loc, issues)
    if not ai.params.swaig_allow_private_urls:
        _private_urls(ai, loc, issues, frozenset(host.lower() for host in allowed_hosts))
    for action_loc, action in _actions(ai, loc):
        _action(action, action_loc, issues, check_swml)


# ---------------------------------------------------------------- unknown fields


def _unknown_fields(model: BaseModel, loc: Loc, issues: IssueCollector) -> None:
    extra = model.model_extra or {}
    known = _known_extras(model)
    for key in extra:
        if key in known:
            continue
        candidates = [*type(model).model_fields, *known]
        hint = difflib.get_close_matches(key, candidates, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        issues.warning((*loc, key), f"unknown field {key!r} (kept, but callgate does not use it){suggestion}")
    for name, value in model:
        if name in extra:
            continue
        for child_loc, child in _child_models(value, (*loc, name)):
            _unknown_fields(child, child_loc, issues)


def _known_extras(model: BaseModel) -> frozenset[str]:
    if isinstance(model, Params):
        return KNOWN_PARAMS
    return KNOWN_EXTRA_FIELDS.get(type(model).__name__, frozenset())


def _child_models(value: Any, loc: Loc) -> Iterator[tuple[Loc, BaseModel]]:
    if isinstance(value, BaseModel):
        yield loc, value
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, BaseModel):
                yield (*loc, index), item
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, BaseModel):
                yield (*loc, key), item


# ---------------------------------------------------------------- prompt


def _prompt(ai: AI, loc: Loc, issues: IssueCollector) -> None:
    prompt = ai.prompt
    if prompt.text is None and prompt.pom is None and not prompt.contexts:
        issues.warning(
            (*loc, "prompt"), "the prompt has neither `text` nor `pom`: the agent has no instructions"
        )
    if prompt.text is not None and prompt.pom is not None:
        issues.warning((*loc, "prompt"), "the prompt has both `text` and `pom`; `text` is used")
    for index, section in enumerate(prompt.pom or []):
        if not section.body and not section.bullets and not section.subsections:
            issues.warning(
                (*loc, "prompt", "pom", index), "a POM section needs a body, bullets or subsections"
            )


# ---------------------------------------------------------------- params callgate ignores


def _ignored_params(ai: AI, loc: Loc, issues: IssueCollector) -> None:
    """A SignalWire param callgate accepts but does not act on, set to a value that would make the
    call sound different on SignalWire: never a silent difference."""
    for key, value in (ai.params.model_extra or {}).items():
        why = audible_difference(key, value)
        if why is not None:
            issues.warning(
                (*loc, "params", key),
                f"accepted but ignored by callgate — {why}; the caller hears a difference from SignalWire",
            )


# ---------------------------------------------------------------- contexts and steps


def _contexts(ai: AI, loc: Loc, issues: IssueCollector) -> None:
    """`prompt.contexts`: every step and context a list names must exist (an error with its path)."""
    contexts = ai.prompt.contexts
    if contexts is None:
        return
    cloc = (*loc, "prompt", "contexts")
    if not contexts:
        issues.error(cloc, "`contexts` is empty: define at least a `default` context with steps")
        return
    if "default" not in contexts:
        first = next(iter(contexts))
        issues.warning(cloc, f"no `default` context: the call starts in {first!r}")
    functions = {f.function for f in ai.SWAIG.functions} | set(ai.SWAIG.native_functions)
    for name, context in contexts.items():
        xloc = (*cloc, name)
        if not context.steps:
            issues.error((*xloc, "steps"), f"context {name!r} has no steps")
        step_names = [step.name for step in context.steps]
        for index, target in enumerate(context.valid_contexts or []):
            if target not in contexts:
                issues.error((*xloc, "valid_contexts", index), f"no context named {target!r}")
        for index, target in enumerate(context.valid_steps or []):
            if target != "next" and target not in step_names:
                issues.error((*xloc, "valid_steps", index), f"no step named {target!r} in context {name!r}")
        seen: set[str] = set()
        for sindex, step in enumerate(context.steps):
            sloc = (*xloc, "steps", sindex)
            if step.name in seen:
                issues.error((*sloc, "name"), f"duplicate step name {step.name!r} in context {name!r}")
            seen.add(step.name)
            if step.name == "next":
                issues.error((*sloc, "name"), "`next` is reserved (it means the following step)")
            if step.text is None and step.pom is None and step.gather_info is None:
                issues.error(sloc, f"step {step.name!r} has neither `text` nor `pom`")
            for index, target in enumerate(step.valid_steps or []):
                if target != "next" and target not in step_names:
                    issues.error(
                        (*sloc, "valid_steps", index), f"no step named {target!r} in context {name!r}"
                    )
            for index, target in enumerate(step.valid_contexts or []):
                if target not in contexts:
                    issues.error((*sloc, "valid_contexts", index), f"no context named {target!r}")
            if step.end and step.valid_steps:
                issues.warning((*sloc, "valid_steps"), "ignored: a step with `end: true` goes nowhere")
            if isinstance(step.functions, list) and not ai.SWAIG.includes:
                for index, fn in enumerate(step.functions):
                    if fn not in functions:
                        issues.warning((*sloc, "functions", index), f"no function named {fn!r}")
            elif (
                isinstance(step.functions, str)
                and step.functions.lower() != "none"
                and step.functions not in functions
                and not ai.SWAIG.includes
            ):
                issues.warning((*sloc, "functions"), f"no function named {step.functions!r}")
            if step.gather_info is not None:
                _gather_info(step.gather_info, (*sloc, "gather_info"), sindex, step_names, functions, issues)


def _gather_info(
    gather: GatherInfo,
    loc: Loc,
    step_index: int,
    step_names: list[str],
    functions: set[str],
    issues: IssueCollector,
) -> None:
    """The SDK's own checks (ContextBuilder.validate), each with its path."""
    if not gather.questions:
        issues.error((*loc, "questions"), "gather_info has no questions")
    keys: set[str] = set()
    for index, question in enumerate(gather.questions):
        qloc = (*loc, "questions", index)
        if question.key in keys:
            issues.error((*qloc, "key"), f"duplicate gather_info question key {question.key!r}")
        keys.add(question.key)
        if question.type not in GATHER_TYPES:
            issues.warning(
                (*qloc, "type"), f"unknown answer type {question.type!r} (one of {', '.join(GATHER_TYPES)})"
            )
        for findex, name in enumerate(question.functions or []):
            if name not in functions:
                issues.warning((*qloc, "functions", findex), f"no function named {name!r}")
    action = gather.completion_action
    if action == "next_step":
        if step_index + 1 >= len(step_names):
            issues.error((*loc, "completion_action"), "`next_step` but this is the last step of its context")
    elif action is not None and action not in step_names:
        issues.error((*loc, "completion_action"), f"no step named {action!r} in this context")


# ---------------------------------------------------------------- functions


def _functions(ai: AI, loc: Loc, issues: IssueCollector) -> None:
    swaig_loc = (*loc, "SWAIG")
    seen: dict[str, int] = {}
    for name in ai.SWAIG.native_functions:
        if name not in KNOWN_NATIVE_FUNCTIONS:
            index = ai.SWAIG.native_functions.index(name)
            issues.warning((*swaig_loc, "native_functions", index), f"unknown native function {name!r}")
    has_default_hook = bool(ai.SWAIG.defaults.web_hook_url)
    for index, function in enumerate(ai.SWAIG.functions):
        floc = (*swaig_loc, "functions", index)
        name = function.function
        if name in seen:
            issues.error(
                (*floc, "function"), f"duplicate function name {name!r} (first at functions[{seen[name]}])"
            )
        else:
            seen[name] = index
        if not _TOOL_NAME.match(name):
            issues.warning(
                (*floc, "function"), f"{name!r} is not a valid tool name (letters, digits, _ and -)"
            )
        if name == "check_for_input":
            issues.warning(
                (*floc, "function"),
                "accepted but not polled by callgate: SignalWire calls check_for_input every "
                "params.input_poll_freq ms to feed outside input (an SMS) to the AI; callgate does not",
            )
        if not function.description_text:
            issues.warning(
                floc, "the function has no `description` (or `purpose`): the model will not know its use"
            )
        _function_runner(function, floc, issues, has_default_hook)


def _function_runner(function: Function, loc: Loc, issues: IssueCollector, has_default_hook: bool) -> None:
    if function.builtin == "transfer":
        transfer = function.transfer
        if transfer is not None and transfer.destinations == [] and not transfer.destination_url:
            # `destinations: []` is Vapi's dynamic transfer: without a server to ask it can never work.
            issues.error(
                (*loc, "transfer", "destination_url"),
                "`transfer.destinations: []` asks a server for the destination: set transfer.destination_url",
            )
    if function.builtin is not None:
        for other in ("data_map", "web_hook_url"):
            if getattr(function, other) is not None:
                issues.warning(
                    (*loc, other),
                    f"ignored: `builtin: {function.builtin}` runs inside callgate, not via {other}",
                )
    elif function.transfer is not None:
        issues.warning((*loc, "transfer"), "a `transfer` block is only used with `builtin: transfer`")
    elif function.data_map is not None and function.web_hook_url is not None:
        issues.warning((*loc, "web_hook_url"), "ignored: the function has a data_map, which runs instead")
    elif function.data_map is None and function.web_hook_url is None and not has_default_hook:
        issues.warning(
            loc,
            "the function has no data_map, web_hook_url or builtin, and SWAIG has no default web_hook_url",
        )


# ---------------------------------------------------------------- URLs


def private_host(url: str) -> str | None:
    """The host of `url` if it is loopback/private/link-local (not resolved: names are taken as public)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return None
    if not host or "${" in parts.netloc or "%{" in parts.netloc:
        return None
    host = host.lower()
    if host == "localhost" or host.endswith(".localhost"):
        return host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.is_private or address.is_loopback or address.is_link_local or address.is_unspecified:
        return host
    return None


def _webhook_urls(ai: AI, loc: Loc) -> Iterator[tuple[Loc, str]]:
    swaig_loc = (*loc, "SWAIG")
    if ai.SWAIG.defaults.web_hook_url:
        yield (*swaig_loc, "defaults", "web_hook_url"), ai.SWAIG.defaults.web_hook_url
    for index, include in enumerate(ai.SWAIG.includes):
        yield (*swaig_loc, "includes", index, "url"), include.url
    for index, function in enumerate(ai.SWAIG.functions):
        floc = (*swaig_loc, "functions", index)
        if function.web_hook_url:
            yield (*floc, "web_hook_url"), function.web_hook_url
        if function.transfer is not None and function.transfer.destination_url:
            yield (*floc, "transfer", "destination_url"), function.transfer.destination_url
        if function.data_map is not None:
            for windex, webhook in enumerate(function.data_map.webhooks):
                yield (*floc, "data_map", "webhooks", windex, "url"), webhook.url


def _private_urls(ai: AI, loc: Loc, issues: IssueCollector, allowed: frozenset[str]) -> None:
    for url_loc, url in _webhook_urls(ai, loc):
        host = private_host(url)
        if host is not None and host not in allowed:
            issues.warning(
                url_loc,
                f"{host} is a private/loopback address: callgate refuses it at run time "
                "unless params.swaig_allow_private_urls is true",
            )


# ---------------------------------------------------------------- actions


def _outputs(data_map: DataMap, loc: Loc) -> Iterator[tuple[Loc, Output]]:
    if data_map.output is not None:
        yield (*loc, "output"), data_map.output
    for index, expression in enumerate(data_map.expressions):
        yield (*loc, "expressions", index, "output"), expression.output
    for windex, webhook in enumerate(data_map.webhooks):
        wloc = (*loc, "webhooks", windex)
        if webhook.output is not None:
            yield (*wloc, "output"), webhook.output
        for index, expression in enumerate(webhook.expressions):
            yield (*wloc, "expressions", index, "output"), expression.output


def _actions(ai: AI, loc: Loc) -> Iterator[tuple[Loc, Any]]:
    for index, function in enumerate(ai.SWAIG.functions):
        if function.data_map is None:
            continue
        dloc = (*loc, "SWAIG", "functions", index, "data_map")
        for output_loc, output in _outputs(function.data_map, dloc):
            for aindex, action in enumerate(output.action):
                yield (*output_loc, "action", aindex), action


def _action(action: Any, loc: Loc, issues: IssueCollector, check_swml: SwmlCheck | None) -> None:
    if not isinstance(action, Mapping):
        issues.warning(
            loc, f"an action should be an object such as {{say: ...}} (got {type(action).__name__})"
        )
        return
    for key, value in action.items():
        if key not in KNOWN_ACTIONS:
            hint = difflib.get_close_matches(str(key), sorted(KNOWN_ACTIONS), n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            issues.warning((*loc, key), f"unknown action {key!r}{suggestion}")
        elif key in NOT_APPLIED_ACTIONS:
            issues.warning((*loc, key), f"accepted but not applied by callgate: {NOT_APPLIED_ACTIONS[key]}")
        elif key == "SWML" and check_swml is not None and isinstance(value, Mapping):
            check_swml(value, (*loc, key))
