"""Expand compiled templates against a context mapping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from callgate.template.functions import ENV_KEY, TemplateEnv, call_function
from callgate.template.parser import Expression, Placeholder, compile_template, parse_expression
from callgate.template.paths import resolve
from callgate.template.render import apply_modifiers, apply_text_modifiers, encode_path_part, to_text


def expand(text: str, ctx: Mapping[str, Any]) -> str:
    """Expand every `${…}` and `%{…}` in `text`; anything missing becomes "". Never raises.

    Values are inserted once: a value that itself contains `${…}` is not expanded again, so
    text from the caller or the model cannot reach `meta_data` or other secrets.
    """
    if not isinstance(text, str):
        return to_text(text)
    parts = compile_template(text)
    if len(parts) == 1:
        only = parts[0]
        return only if only.__class__ is str else _placeholder_text(only, ctx)  # type: ignore[return-value,arg-type]
    out: list[str] = []
    for part in parts:
        out.append(part if part.__class__ is str else _placeholder_text(part, ctx))  # type: ignore[arg-type]
    return "".join(out)


def expand_url(text: str, ctx: Mapping[str, Any]) -> str:
    """`expand` for a URL: the model's arguments (`args.…`, `input.args.…`) are percent-encoded even
    without `enc:`, so an argument such as `../admin?x=` or `a b#` cannot change the URL's path,
    query or fragment (DESIGN §7). `enc:` still encodes once — in the path part leaving `/` alone,
    as SignalWire does (but never a `.`/`..` segment); other values go in as they are."""
    if not isinstance(text, str):
        return to_text(text)
    out: list[str] = []
    in_path = True  # before the first literal `?` or `#`
    for part in compile_template(text):
        if part.__class__ is str:
            out.append(part)  # type: ignore[arg-type]
            if "?" in part or "#" in part:  # type: ignore[operator]
                in_path = False
            continue
        try:
            if part.function:  # type: ignore[union-attr]
                # A function's result may carry the model's words (`@{echo ${args.x}}`): encoded whole.
                out.append(quote(_function_text(part, ctx), safe="", encoding="utf-8", errors="replace"))  # type: ignore[arg-type]
                continue
            expression, found = _evaluate(part, ctx)  # type: ignore[arg-type]
            if expression.encode and in_path:
                piece = encode_path_part(apply_text_modifiers(to_text(found), expression))
            else:
                piece = apply_modifiers(to_text(found), expression)
            if not expression.encode and _from_model(expression.path):
                piece = quote(piece, safe="", encoding="utf-8", errors="replace")
            elif not expression.encode and ("?" in piece or "#" in piece):
                in_path = False  # a base URL with its own query
        except Exception:
            piece = ""
        out.append(piece)
    return "".join(out)


def _from_model(path: tuple[Any, ...]) -> bool:
    return bool(path) and (path[0] == "args" or (len(path) > 1 and path[0] == "input" and path[1] == "args"))


def expand_value(value: Any, ctx: Mapping[str, Any]) -> Any:
    """Expand every string in a JSON-like value: dict keys and values, list items.

    A string that is exactly one placeholder without modifiers (`"${meta_data.table}"`) keeps
    the type of what it finds (dict, list, number, bool); every other string becomes a string.
    Other scalars are returned unchanged; tuples come back as lists. Never raises.
    """
    try:
        return _expand_any(value, ctx)
    except RecursionError:
        # Nesting deeper than Python's stack: leave that value as it was written.
        return value


def has_placeholders(text: str) -> bool:
    """True when `text` holds at least one complete `${…}`, `%{…}` or `@{…}` (even an empty `${}`)."""
    if not isinstance(text, str) or ("${" not in text and "%{" not in text and "@{" not in text):
        return False
    return any(isinstance(part, Placeholder) for part in compile_template(text))


def _expand_any(value: Any, ctx: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return _expand_typed(value, ctx)
    if isinstance(value, Mapping):
        return {
            (expand(key, ctx) if isinstance(key, str) else key): _expand_any(item, ctx)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_expand_any(item, ctx) for item in value]
    return value


def _expand_typed(text: str, ctx: Mapping[str, Any]) -> Any:
    parts = compile_template(text)
    if len(parts) == 1 and isinstance(parts[0], Placeholder) and not parts[0].function:
        expression, found = _evaluate(parts[0], ctx)
        if expression.plain and found is not None and not isinstance(found, str):
            return found
        return apply_modifiers(to_text(found), expression)
    return expand(text, ctx)


def _placeholder_text(placeholder: Placeholder, ctx: Mapping[str, Any]) -> str:
    try:
        if placeholder.function:
            return _function_text(placeholder, ctx)
        expression, found = _evaluate(placeholder, ctx)
        return apply_modifiers(to_text(found), expression)
    except Exception:
        # Only reachable through pathological input (e.g. the stack running out); a
        # placeholder that cannot be expanded is a missing one.
        return ""


def _function_text(placeholder: Placeholder, ctx: Mapping[str, Any]) -> str:
    """`@{name arguments}`, its nested placeholders expanded first; an unknown name stays as written."""
    body = _body(placeholder, ctx)
    env = ctx.get(ENV_KEY)
    result = call_function(body, env if isinstance(env, TemplateEnv) else None)
    return "@{" + body + "}" if result is None else result


def _body(placeholder: Placeholder, ctx: Mapping[str, Any]) -> str:
    return "".join(
        part if isinstance(part, str) else _placeholder_text(part, ctx) for part in placeholder.parts
    )


def _evaluate(placeholder: Placeholder, ctx: Mapping[str, Any]) -> tuple[Expression, Any]:
    expression = placeholder.static
    if expression is None:
        # Nested placeholders first: `${meta_data.table.${lc:args.target}}`.
        expression = parse_expression(_body(placeholder, ctx))
    return expression, resolve(expression.path, ctx)
