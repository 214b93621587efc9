"""Evaluate a function's `data_map` the way SignalWire's platform does.

Order (a `return` at the first output produced):
1. `expressions`, in order: the expanded `string` is searched with `pattern` (see `matching`);
   the first match's `output` wins. An expression's `nomatch-output`, if any, ends it on a miss.
2. `webhooks`: only the first eligible one is requested — eligible means at least one of its
   `require_args`/`required_args` is present (when it lists any) and it has `output` or
   `expressions`. It is sent as POST when `method` is POST or it has a body (`params`,
   `input_args_as_params`), as GET otherwise; headers are sent as written (not expanded), a body
   is the expanded `params` as JSON (or one `form_param` field). It fails on a transport error,
   timeout, oversized or non-JSON answer, or one of its `error_keys` at the top level; a status
   outside 2xx is added to an object answer as `http_code` and fails only via `error_keys`.
   On success its `foreach`, then `expressions`, then `output` run against the answer.
3. The data_map's own `output`: the fallback when nothing above produced an output.
4. Otherwise the generic error SignalWire gives the model.

Template data: the call data (args, meta_data, global_data, input, call details, prompt_vars);
after a webhook, the answer's top-level fields (or `array`) and `response` on top of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from callgate.swaig.fetch import Fetched, safe_url
from callgate.swaig.matching import matches
from callgate.swaig.render import render_tree
from callgate.swml.limits import LimitExceeded, load_json
from callgate.swml.models import DataMap, Expression, Output, Webhook
from callgate.template import expand, expand_url, expand_value, lookup

GENERIC_ERROR = "There was an error processing this request."


@dataclass(frozen=True)
class WebhookRequest:
    method: str
    url: str
    headers: dict[str, str]
    json_body: Any = None
    form: dict[str, str] | None = None


Fetcher = Callable[[WebhookRequest], Awaitable[Fetched]]


@dataclass
class DataMapResult:
    """The output that won (expanded), where it came from, and what the webhook did."""

    response: str | None
    action: list[Any]
    source: str
    error: str | None = None
    url: str | None = None
    request: dict[str, Any] | None = None
    webhook_error: str | None = None
    webhook_status: int | None = None
    webhook_answer: Any = None
    warnings: list[str] = field(default_factory=list)
    # False for a webhook that answered nothing usable: the data_map's own output takes over.
    produced: bool = True
    post_process: bool = False  # the output asked for the model's reply before its actions


def render_output(output: Output, ctx: Mapping[str, Any], source: str) -> DataMapResult:
    response = None if output.response is None else expand(output.response, ctx)
    action = render_tree(output, output.action, ctx)
    return DataMapResult(
        response=response,
        action=action if isinstance(action, list) else [],
        source=source,
        post_process=output.post_process,
    )


def _nomatch_output(expression: Expression) -> Output | None:
    extra = expression.model_extra or {}
    raw = extra.get("nomatch-output", extra.get("nomatch_output"))
    if raw is None:
        return None
    try:
        return Output.model_validate(raw)
    except ValueError:
        return None


def run_expressions(
    expressions: list[Expression], ctx: Mapping[str, Any], where: str, warnings: list[str]
) -> DataMapResult | None:
    """The first expression whose pattern matches (or whose nomatch-output applies), rendered."""
    for index, expression in enumerate(expressions):
        text = expand(expression.string, ctx)
        try:
            hit = matches(expression.pattern, text)
        except re.error as exc:
            warnings.append(f"{where}[{index}].pattern {expression.pattern!r} is invalid: {exc}")
            continue
        if hit:
            return render_output(expression.output, ctx, f"{where}[{index}]")
        nomatch = _nomatch_output(expression)
        if nomatch is not None:
            return render_output(nomatch, ctx, f"{where}[{index}].nomatch-output")
    return None


def _present(args: Mapping[str, Any], name: str) -> bool:
    return name in args and args[name] not in (None, "")


def eligible(webhook: Webhook, args: Mapping[str, Any]) -> bool:
    if webhook.output is None and not webhook.expressions:
        return False
    required = webhook.required_args
    return not required or any(_present(args, name) for name in required)


def build_request(webhook: Webhook, ctx: Mapping[str, Any], args: Mapping[str, Any]) -> WebhookRequest:
    url = expand_url(webhook.url, ctx).strip()  # the model's arguments cannot reshape the URL
    body: Any = None
    if webhook.params is not None:
        body = expand_value(webhook.params, ctx)
    if webhook.input_args_as_params:
        merged = dict(body) if isinstance(body, dict) else {}
        merged.update(args)
        body = merged
    method = "POST" if webhook.method == "POST" or body is not None else "GET"
    headers = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in webhook.headers.items()}
    form_param = (webhook.model_extra or {}).get("form_param")
    if isinstance(form_param, str) and form_param and method == "POST":
        return WebhookRequest(
            method, url, headers, form={form_param: json.dumps(body if body is not None else {})}
        )
    if method == "POST":
        return WebhookRequest(method, url, headers, json_body=body if body is not None else None)
    return WebhookRequest(method, url, headers)


def read_answer(
    fetched: Fetched, webhook: Webhook, error_keys: tuple[str, ...] = ()
) -> tuple[Any, str | None]:
    """The parsed answer and, if the webhook failed, why (SignalWire's failure rules)."""
    if not fetched.ok:
        return {"protocol_error": True, "error": fetched.error}, f"protocol_error: {fetched.error}"
    text = fetched.body.decode("utf-8", errors="replace").strip()
    if not text:
        return {"parse_error": True}, f"parse_error: empty answer (HTTP {fetched.status})"
    try:
        data = load_json(text)
    except LimitExceeded as exc:  # deeper than the call can copy, render and record
        return {"parse_error": True}, f"parse_error: answer is {exc.message} (HTTP {fetched.status})"
    except ValueError:
        return {"parse_error": True}, f"parse_error: answer is not JSON (HTTP {fetched.status})"
    if not isinstance(data, dict | list):
        return {"parse_error": True}, f"parse_error: answer is a JSON {type(data).__name__}"
    if isinstance(data, dict):
        if fetched.status is not None and not 200 <= fetched.status <= 299:
            data["http_code"] = fetched.status
        for key in (*webhook.error_keys, *error_keys):
            if key in data:
                return data, f"error key {key!r} in answer"
    return data, None


def answer_context(base: Mapping[str, Any], data: Any) -> dict[str, Any]:
    """Template data after a webhook: the call data, then `response`, then the answer's fields."""
    ctx = dict(base)
    ctx["response"] = data
    if isinstance(data, list):
        ctx["array"] = data
    else:
        ctx.update(data)
    return ctx


def run_foreach(webhook: Webhook, data: Any, ctx: dict[str, Any]) -> None:
    each = webhook.foreach
    if each is None:
        return
    items = lookup(each.input_key, data) if isinstance(data, dict) else None
    if items is None and isinstance(data, list) and each.input_key in ("array", ""):
        items = data
    if not isinstance(items, list):
        ctx[each.output_key] = ""
        return
    limit = each.max if each.max is not None and each.max > 0 else len(items)
    parts = [expand(each.append, {**ctx, "this": item}) for item in items[:limit]]
    ctx[each.output_key] = "".join(parts)


async def evaluate(
    data_map: DataMap, ctx: Mapping[str, Any], args: Mapping[str, Any], fetcher: Fetcher
) -> DataMapResult:
    """Run the data_map for one call of its function. Never raises for bad answers."""
    warnings: list[str] = []
    found = run_expressions(data_map.expressions, ctx, "data_map.expressions", warnings)
    if found is not None:
        found.warnings = warnings
        return found
    attempt: DataMapResult | None = None
    for index, webhook in enumerate(data_map.webhooks):
        if not eligible(webhook, args):
            continue
        attempt = await _run_webhook(index, webhook, ctx, args, fetcher, warnings, tuple(data_map.error_keys))
        break  # SignalWire requests one webhook per call; a failure is not retried elsewhere
    if attempt is not None and attempt.produced:
        attempt.warnings = warnings
        return attempt
    if data_map.output is not None:
        result = render_output(data_map.output, ctx, "data_map.output")
    else:
        result = DataMapResult(
            response=GENERIC_ERROR,
            action=[],
            source="none",
            error="no expression or webhook produced an output",
        )
    if attempt is not None:
        result.url = attempt.url
        result.request = attempt.request
        result.webhook_error = attempt.webhook_error
        result.webhook_status = attempt.webhook_status
        result.webhook_answer = attempt.webhook_answer
    result.warnings = warnings
    return result


async def _run_webhook(
    index: int,
    webhook: Webhook,
    ctx: Mapping[str, Any],
    args: Mapping[str, Any],
    fetcher: Fetcher,
    warnings: list[str],
    error_keys: tuple[str, ...] = (),
) -> DataMapResult:
    where = f"data_map.webhooks[{index}]"
    request = build_request(webhook, ctx, args)
    shown_url = safe_url(request.url)
    record: dict[str, Any] = {"method": request.method, "url": shown_url}
    if request.json_body is not None:
        record["body"] = request.json_body
    if request.form is not None:
        record["form"] = request.form
    fetched = await fetcher(request)
    data, failure = read_answer(fetched, webhook, error_keys)
    empty = DataMapResult(
        response=None,
        action=[],
        source=where,
        url=shown_url,
        request=record,
        webhook_error=failure,
        webhook_status=fetched.status,
        webhook_answer=data,
        produced=False,
    )
    if failure is not None:
        return empty
    wctx = answer_context(ctx, data)
    run_foreach(webhook, data, wctx)
    result = run_expressions(webhook.expressions, wctx, f"{where}.expressions", warnings)
    if result is None and webhook.output is not None:
        result = render_output(webhook.output, wctx, f"{where}.output")
    if result is None:
        return empty
    result.url = shown_url
    result.request = record
    result.webhook_status = fetched.status
    result.webhook_answer = data
    return result
