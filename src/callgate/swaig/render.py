"""Render an output's action tree against template data, fast and without sharing containers.

An action tree is compiled once into a plan that knows which strings hold placeholders; literal
strings and numbers are reused as they are (immutable), placeholders go through the template
engine, and every dict and list is rebuilt, so the result never aliases the document.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from callgate.template import expand, expand_value, has_placeholders

# Plan nodes: ("lit", value) | ("tpl", text) | ("dict", [(key, key_is_template, node)]) | ("list", [node])
Plan = tuple[str, Any]

_CACHE_LIMIT = 4096
_plans: dict[int, tuple[object, Plan]] = {}


def compile_tree(value: Any) -> Plan:
    if isinstance(value, str):
        return ("tpl", value) if has_placeholders(value) else ("lit", value)
    if isinstance(value, Mapping):
        return (
            "dict",
            [
                (key, isinstance(key, str) and has_placeholders(key), compile_tree(item))
                for key, item in value.items()
            ],
        )
    if isinstance(value, list | tuple):
        return ("list", [compile_tree(item) for item in value])
    return ("lit", value)


def render(plan: Plan, ctx: Mapping[str, Any]) -> Any:
    kind, body = plan
    if kind == "lit":
        # Strings, numbers, booleans and None are immutable; anything else is copied by expansion.
        return body if body is None or isinstance(body, str | int | float | bool) else expand_value(body, ctx)
    if kind == "tpl":
        return expand_value(body, ctx)
    if kind == "dict":
        return {(expand(key, ctx) if templated else key): render(node, ctx) for key, templated, node in body}
    return [render(node, ctx) for node in body]


def render_tree(owner: object, value: Any, ctx: Mapping[str, Any]) -> Any:
    """`expand_value(value, ctx)`, with the plan for `value` cached on the identity of `owner`
    (the document object that holds it, alive as long as the document is)."""
    cached = _plans.get(id(owner))
    if cached is None or cached[0] is not owner:
        if len(_plans) >= _CACHE_LIMIT:
            _plans.clear()
        cached = (owner, compile_tree(value))
        _plans[id(owner)] = cached
    return render(cached[1], ctx)
