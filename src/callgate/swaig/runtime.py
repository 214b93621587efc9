"""The functions runtime of one call: which SWAIG functions exist and are active, what the model
sees of them, and what happens when the model calls one.

`FunctionRuntime.call()` never raises: an unknown or inactive function, a refused, failing or
slow webhook, a bad answer or a bad action each yield a defined `FunctionResult` (an error text
for the model, or the data_map's fallback output) and a `swaig_log` entry. State actions
(toggle_functions, set/unset_meta_data, set/unset_global_data) are applied here before the
result is returned; every other action is handed to the conversation engine in `actions`.

meta_data stays out of everything the model sees: it is never in `tools()`, and a webhook's
answer is expanded without it. Only a data_map output the document author wrote may insert it.
Webhook passwords are sent as basic auth and never stored in `swaig_log` or logged.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from callgate.swaig import datamap
from callgate.swaig.actions import (
    Action,
    SetGlobalData,
    SetMetaData,
    Swml,
    ToggleFunctions,
    UnsetGlobalData,
    UnsetMetaData,
    actions_to_json,
    parse_actions,
)
from callgate.swaig.arguments import Arguments, parse_arguments
from callgate.swaig.clock import Clock, SystemClock
from callgate.swaig.context import CallContext
from callgate.swaig.fetch import Credentials, Fetched, fetch, safe_url, split_credentials
from callgate.swaig.includes import adopt, include_target, read_signatures, signature_request
from callgate.swaig.natives import NATIVE_FUNCTIONS, resolve_zone
from callgate.swaig.provenance import model_strings, server_strings
from callgate.swaig.schema import openai_tool
from callgate.swaig.swaig_log import SwaigLogEntry
from callgate.swaig.urlguard import Guard
from callgate.swml.limits import LimitExceeded, load_json
from callgate.swml.models import AI, DataMap, Function, Include
from callgate.swml.types import parse_bool
from callgate.template import TemplateEnv, expand, expand_value, with_env

log = logging.getLogger(__name__)

# Functions SignalWire calls itself at fixed moments; never offered to the model as tools.
STARTUP_HOOKS = ("startup_hook", "start_hook")
HANGUP_HOOKS = ("hangup_hook", "stop_hook")
RESERVED_FUNCTIONS = frozenset({*STARTUP_HOOKS, *HANGUP_HOOKS, "summarize_conversation"})


@dataclass
class FunctionResult:
    """What one function call produced.

    `response` is the tool result the model receives. `builtin` is set (to "hangup" or
    "transfer") for a built-in function the engine itself carries out, with `args` parsed.
    `post_process`: the webhook asked for the model to speak before the actions run.
    `from_server`: the actions came from a customer server's answer (a web_hook_url, or a data_map
    webhook's output) rather than the document's own data_map expressions — the destination
    policy trusts a server's transfer destinations, not those templated from model arguments.
    """

    name: str
    response: str
    actions: list[Action] = field(default_factory=list)
    error: str | None = None
    builtin: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    fillers: list[str] = field(default_factory=list)
    post_process: bool = False
    warnings: list[str] = field(default_factory=list)
    from_server: bool = False
    # The strings in the server's answer that the server chose (none derived from a model argument):
    # a destination counts as the server's choice only if it is one of them.
    server_values: frozenset[str] | None = None
    # Seconds the expanded templates asked to wait (`@{sleep}`); the session waits that long on the
    # call's clock before the model hears the result.
    pause: float = 0.0


def failure_text(name: str, reason: str) -> str:
    """The tool result the model gets when a function could not run."""
    return f"The function {name} failed: {reason}."


class FunctionRuntime:
    def __init__(
        self,
        ai: AI,
        context: CallContext,
        http: httpx.AsyncClient,
        *,
        clock: Clock | None = None,
        timeout: float = 10.0,
        max_response_bytes: int = 256_000,
        guard_exempt: Callable[[str], bool] | None = None,
    ) -> None:
        """`guard_exempt(url)` → True lets a URL past the private-address guard (the scenario
        runner's `passthrough` list); everything else follows the document's params."""
        self.ai = ai
        self.context = context
        self.http = http
        self.clock: Clock = clock or SystemClock()
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self.guard_exempt = guard_exempt
        self.swaig_log: list[SwaigLogEntry] = []
        # Every value the model gave as a function argument in this call (see `provenance`).
        self.model_values: set[str] = set()
        self.warnings: list[str] = []
        self.global_data: dict[str, Any] = copy.deepcopy(ai.global_data)
        self._functions: dict[str, Function] = {}
        self._active: dict[str, bool] = {}
        self._natives: dict[str, Function] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._prompt_cache: tuple[int, dict[str, Any]] | None = None
        self._function_map = {entry.MatchFunction: entry.Function for entry in ai.params.function_map}
        for function in ai.SWAIG.functions:
            self._register(function, origin="document")
        for name in ai.SWAIG.native_functions:
            native = NATIVE_FUNCTIONS.get(name)
            if native is None:
                self._warn(f"native function {name!r} is not supported by callgate; it is not offered")
                continue
            self._natives[name] = Function(
                function=name, description=native.description, parameters=native.parameters
            )
            self._active.setdefault(name, True)

    # ------------------------------------------------------------ the function set

    def _register(self, function: Function, origin: str) -> None:
        name = function.function
        if name in self._functions:
            self._warn(f"{origin} function {name!r} duplicates an earlier definition; the first is kept")
            return
        self._functions[name] = function
        self._active[name] = function.active
        if function.meta_data:
            store = self._meta.setdefault(self.meta_data_token(function), {})
            for key, value in copy.deepcopy(function.meta_data).items():
                store.setdefault(key, value)

    def get(self, name: str) -> Function | None:
        return self._functions.get(name) or self._natives.get(name)

    def hook(self, names: tuple[str, ...]) -> str | None:
        """The document's hook function among `names` (SignalWire's spellings), if it has one; for
        the hang-up hook also a function flagged `is_hangup_hook`."""
        found = next((name for name in names if name in self._functions), None)
        if found is None and names == HANGUP_HOOKS:
            found = next((n for n, f in self._functions.items() if f.is_hangup_hook), None)
        return found

    def names(self) -> list[str]:
        """Every known function, active or not, document order then natives."""
        return [*self._functions, *(n for n in self._natives if n not in self._functions)]

    def is_active(self, name: str) -> bool:
        return self.get(name) is not None and self._active.get(name, False)

    def set_active(self, name: str, active: bool) -> bool:
        """Switch a function on or off; False (and a warning) if there is no such function."""
        if self.get(name) is None:
            self._warn(f"toggle_functions: no function named {name!r}")
            return False
        self._active[name] = active
        return True

    def tools(self) -> list[dict[str, Any]]:
        """OpenAI `tools` for the active functions (declared, included, builtin and native)."""
        out: list[dict[str, Any]] = []
        for name in self.names():
            if name in RESERVED_FUNCTIONS or not self.is_active(name):
                continue
            function = self.get(name)
            if function is not None and not function.is_hangup_hook:
                out.append(openai_tool(name, function.description_text, function.parameters_schema))
        return out

    # ------------------------------------------------------------ meta_data and global_data

    def _webhook_url(self, function: Function) -> str | None:
        return function.web_hook_url or self.ai.SWAIG.defaults.web_hook_url

    def meta_data_token(self, function: Function) -> str:
        """The function's `meta_data_token`; by default its webhook URL (credentials removed), or
        its name for a data_map or native function."""
        if function.meta_data_token:
            return function.meta_data_token
        url = None if function.data_map is not None else self._webhook_url(function)
        return safe_url(url) if url else function.function

    def meta_data_for(self, function: Function | str) -> dict[str, Any]:
        """The meta_data store shared by every function with the same token (live, not a copy)."""
        found = self.get(function) if isinstance(function, str) else function
        token = self.meta_data_token(found) if found is not None else str(function)
        return self._meta.setdefault(token, {})

    # ------------------------------------------------------------ includes

    async def load_includes(self) -> None:
        """Fetch every `includes` entry's definitions and register them. Never raises."""
        for include in self.ai.SWAIG.includes:
            await self._load_include(include)

    async def _load_include(self, include: Include) -> None:
        url, creds = include_target(include)
        body = signature_request(include, self.context.project_id, self.context.space_id)
        fetched = await self._send("POST", url, json_body=body, credentials=creds)
        answer, problem = _json_answer(fetched)
        entry = self._log("get_signature", json.dumps(list(include.functions)), url, body, answer)
        if problem is not None:
            entry.error = problem
            self._warn(f"includes {url}: {problem}; its functions are not available")
            return
        signatures = read_signatures(answer)
        for issue in signatures.problems:
            self._warn(f"includes {url}: {issue}")
        if signatures.problems:
            entry.error = "; ".join(signatures.problems)
        for function in signatures.functions:
            self._register(adopt(function, url, creds, signatures.defaults), origin=f"included ({url})")

    # ------------------------------------------------------------ calling a function

    def remember_arguments(self, arguments: Any) -> None:
        """Note the values the model supplied: a server that passes one back does not make it the
        server's choice (`callgate.swaig.provenance`)."""
        self.model_values |= model_strings(arguments)

    async def call(
        self, name: str, raw_arguments: str, *, call_log: list[dict[str, Any]] | None = None
    ) -> FunctionResult:
        """Run function `name` with the model's raw argument text. Never raises."""
        arguments = parse_arguments(raw_arguments)
        self.remember_arguments(arguments.args)
        try:
            return await self._call(name, arguments, call_log)
        except Exception as exc:  # a bug must not take the call down; the model hears a failure
            log.exception("SWAIG function %s crashed", name)
            reason = f"internal error ({type(exc).__name__})"
            self._log(name, arguments.raw, None, {}, None).error = reason
            return FunctionResult(name, failure_text(name, reason), error=reason, args=arguments.args)

    async def _call(
        self, name: str, arguments: Arguments, call_log: list[dict[str, Any]] | None
    ) -> FunctionResult:
        args = arguments.args
        function = self.get(name)
        if function is None:
            mapped = self._function_map.get(name)
            if mapped is not None:
                return FunctionResult(name, "", builtin=mapped, args=args)
            reason = "no such function"
            self._log(name, arguments.raw, None, {}, None).error = reason
            return FunctionResult(name, f"The function {name} does not exist.", error=reason, args=args)
        if not self.is_active(name):
            reason = "the function is not active"
            self._log(name, arguments.raw, None, {}, None).error = reason
            return FunctionResult(
                name, f"The function {name} is not available right now.", error=reason, args=args
            )
        fillers = self._fillers(function)
        if function.builtin is not None:
            return FunctionResult(name, "", builtin=function.builtin, args=args, fillers=fillers)
        if name in self._natives and name not in self._functions:
            result = self._call_native(name, arguments)
        elif function.data_map is not None:
            result = await self._call_data_map(function, arguments)
        elif self._webhook_url(function):
            result = await self._call_webhook(function, arguments, call_log)
        else:
            reason = "it has neither a web_hook_url nor a data_map"
            self._log(name, arguments.raw, None, {}, None).error = reason
            result = FunctionResult(name, failure_text(name, reason), error=reason, args=args)
        result.fillers = fillers
        return result

    def _call_native(self, name: str, arguments: Arguments) -> FunctionResult:
        native = NATIVE_FUNCTIONS[name]
        outcome = native.run(arguments.args, self.clock.time(), self.ai.params.local_tz)
        answer = {"response": outcome.response, "action": actions_to_json(outcome.actions)}
        self._log(name, arguments.raw, None, {}, answer).error = outcome.error
        return FunctionResult(
            name, outcome.response, list(outcome.actions), error=outcome.error, args=arguments.args
        )

    async def _call_data_map(self, function: Function, arguments: Arguments) -> FunctionResult:
        name = function.function
        token = self.meta_data_token(function)
        env = TemplateEnv(now=self.clock.time())
        ctx = with_env(self._call_data(function, arguments, include_meta=True), env)

        async def fetcher(request: datamap.WebhookRequest) -> Fetched:
            url, creds = split_credentials(request.url)
            return await self._send(
                request.method,
                url,
                json_body=request.json_body,
                form=request.form,
                headers=request.headers,
                credentials=creds,
            )

        outcome = await datamap.evaluate(function.data_map or _EMPTY_DATA_MAP, ctx, arguments.args, fetcher)
        post_data = self._post_data(function, arguments, token)
        answer: dict[str, Any] = {"response": outcome.response, "action": outcome.action}
        entry = self._log(name, arguments.raw, outcome.url, post_data, answer)
        entry.error = outcome.webhook_error or outcome.error
        result = FunctionResult(
            name, outcome.response or "", error=outcome.error, args=arguments.args, warnings=outcome.warnings
        )
        result.post_process = outcome.post_process
        result.pause = env.pause()
        result.from_server = outcome.source.startswith("data_map.webhooks")
        if result.from_server:
            result.server_values = server_strings(outcome.webhook_answer, self.model_values)
        self._finish(result, outcome.action, token)
        return result

    async def _call_webhook(
        self, function: Function, arguments: Arguments, call_log: list[dict[str, Any]] | None
    ) -> FunctionResult:
        name = function.function
        token = self.meta_data_token(function)
        url, creds = self._webhook_target(function)
        post_data = self._post_data(function, arguments, token, call_log)
        fetched = await self._send("POST", url, json_body=post_data, credentials=creds)
        answer, problem = _json_answer(fetched)
        if problem is None and not isinstance(answer, dict):
            problem = f"its webhook answered a JSON {type(answer).__name__}, not an object"
        if problem is None and fetched.status is not None and not 200 <= fetched.status <= 299:
            problem = f"its webhook answered HTTP {fetched.status}"
        entry = self._log(name, arguments.raw, url, post_data, answer)
        if problem is not None or not isinstance(answer, dict):
            reason = problem or "bad answer"
            entry.error = reason
            return FunctionResult(name, failure_text(name, reason), error=reason, args=arguments.args)
        # SignalWire expands `${…}` in a webhook's answer against the call data — never meta_data,
        # so nothing a server echoes back can pull it into what the model or caller hears.
        env = TemplateEnv(now=self.clock.time())
        ctx = with_env(self._call_data(function, arguments, include_meta=False), env)
        raw_response = answer.get("response")
        response = expand(raw_response, ctx) if isinstance(raw_response, str) else _as_text(raw_response)
        raw_actions = answer.get("action", [])
        result = FunctionResult(
            name,
            response,
            args=arguments.args,
            from_server=True,
            server_values=server_strings(answer, self.model_values),
        )
        result.post_process = parse_bool(answer.get("post_process")) is True
        self._finish(result, expand_value(raw_actions, ctx), token)
        result.pause = env.pause()
        return result

    def _webhook_target(self, function: Function) -> tuple[str, Credentials | None]:
        defaults = self.ai.SWAIG.defaults
        url, embedded = split_credentials(self._webhook_url(function) or "")
        if embedded is not None:
            return url, embedded
        user = function.web_hook_auth_user or defaults.web_hook_auth_user
        password = function.web_hook_auth_password or defaults.web_hook_auth_password
        if user is None and password is None:
            return url, None
        return url, Credentials(user or "", password or "")

    def _finish(self, result: FunctionResult, raw_actions: Any, token: str) -> None:
        """Parse actions, apply the state ones, drop SWML when the document forbids it."""
        warnings = result.warnings
        for action in parse_actions(raw_actions, warnings):
            if isinstance(action, Swml) and not self.ai.params.swaig_allow_swml:
                warnings.append("SWML action dropped: params.swaig_allow_swml is false")
                continue
            self._apply(action, token, warnings)
            result.actions.append(action)
        for warning in warnings:
            self._warn(f"{result.name}: {warning}")
        if self.swaig_log and warnings and self.swaig_log[-1].command_name == result.name:
            entry = self.swaig_log[-1]
            entry.error = "; ".join([entry.error, *warnings] if entry.error else warnings)

    def _apply(self, action: Action, token: str, warnings: list[str]) -> None:
        if isinstance(action, ToggleFunctions):
            for name, active in action.changes:
                if self.get(name) is None:
                    warnings.append(f"toggle_functions: no function named {name!r}")
                else:
                    self._active[name] = active
        elif isinstance(action, SetMetaData):
            self._meta.setdefault(token, {}).update(copy.deepcopy(action.data))
        elif isinstance(action, UnsetMetaData):
            store = self._meta.setdefault(token, {})
            for key in action.keys:
                store.pop(key, None)
        elif isinstance(action, SetGlobalData | UnsetGlobalData) and not self.ai.params.swaig_set_global_data:
            warnings.append(f"{action.to_json()} refused: params.swaig_set_global_data is false")
        elif isinstance(action, SetGlobalData):
            self.global_data.update(copy.deepcopy(action.data))
        elif isinstance(action, UnsetGlobalData):
            for key in action.keys:
                self.global_data.pop(key, None)

    # ------------------------------------------------------------ request data

    def _post_data(
        self,
        function: Function,
        arguments: Arguments,
        token: str,
        call_log: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The body SignalWire POSTs to a function's web_hook_url (and logs for every call)."""
        c = self.context
        body: dict[str, Any] = {
            "app_name": self.ai.params.app_name or c.app_name,
            "function": function.function,
            "version": "2.0",
            "content_type": "text/swaig",
            "content_disposition": "SWAIG Function",
            "channel_active": c.channel_active,
            "channel_offhook": c.channel_active,
            "channel_ready": c.channel_active,
            "conversation_type": "voice",
            "caller_id_name": c.caller_id_name,
            "caller_id_num": c.caller_id_num,
            "project_id": c.project_id,
            "space_id": c.space_id,
            "call_id": c.call_id,
            "ai_session_id": c.ai_session_id,
            "purpose": function.description_text,
            "description": function.description_text,
            "meta_data_token": token,
            # Stores only ever change at the top level (set/unset), so a shallow copy is a snapshot.
            "meta_data": dict(self._meta.get(token, {})),
            "argument": arguments.as_request(),
            "argument_desc": function.parameters_schema,
        }
        if c.conversation_id:
            body["conversation_id"] = c.conversation_id
        if self.global_data:
            body["global_data"] = dict(self.global_data)
        params_extra = self.ai.params.model_extra or {}
        if c.swml_vars or _truthy(params_extra.get("swaig_post_swml_vars")):
            body["SWMLVars"] = copy.deepcopy(c.swml_vars)
        if self.ai.params.swaig_post_conversation and call_log is not None:
            body["call_log"] = call_log
        return body

    def _call_data(self, function: Function, arguments: Arguments, *, include_meta: bool) -> dict[str, Any]:
        """Template data for data_map strings and webhook answers (SignalWire's "call data")."""
        c = self.context
        prompt_vars = self._prompt_vars()
        # Read-only for templates (which never mutate), so live state is shared, not copied.
        data: dict[str, Any] = {
            "args": arguments.args,
            "argument": arguments.as_request(),
            "global_data": self.global_data,
            "call_id": c.call_id,
            "ai_session_id": c.ai_session_id,
            "conversation_id": c.conversation_id or c.call_id,
            "function": function.function,
            "caller_id_name": c.caller_id_name,
            "caller_id_num": c.caller_id_num,
            "project_id": c.project_id,
            "space_id": c.space_id,
            "app_name": self.ai.params.app_name or c.app_name,
            "SWMLVars": c.swml_vars,
            "call": c.call_scope(),
        }
        if include_meta:
            data["meta_data"] = self.meta_data_for(function)
        return {**prompt_vars, **data, "input": dict(data), "prompt_vars": prompt_vars}

    def _prompt_vars(self) -> dict[str, Any]:
        # The values change once a minute at most; formatting dates on every call is wasted work.
        epoch = self.clock.time()
        if self._prompt_cache is not None and self._prompt_cache[0] == int(epoch // 60):
            return self._prompt_cache[1]
        zone = resolve_zone(self.ai.params.local_tz or "UTC") or ZoneInfo("UTC")
        now = dt.datetime.fromtimestamp(epoch, tz=zone)
        hour = now.hour
        time_of_day = "morning" if 5 <= hour < 12 else "afternoon" if 12 <= hour < 17 else "evening"
        values = {
            "local_date": now.strftime("%A, %B ") + str(now.day) + now.strftime(", %Y"),
            "local_time": now.strftime("%I:%M %p %Z").lstrip("0"),
            "time_of_day": time_of_day,
            "caller_id_number": self.context.caller_id_num,
            "to_number": self.context.to_number,
        }
        self._prompt_cache = (int(epoch // 60), values)
        return values

    def _fillers(self, function: Function) -> list[str]:
        if function.fillers:
            if isinstance(function.fillers, list):
                return list(function.fillers)
            code = self.ai.languages[0].code if self.ai.languages else "en-US"
            lowered = {key.lower(): value for key, value in function.fillers.items()}
            chosen = lowered.get(code.lower()) or lowered.get("default") or next(iter(lowered.values()), [])
            return list(chosen)
        if function.skip_fillers or not self.ai.languages:
            return []
        return list(self.ai.languages[0].function_fillers)

    # ------------------------------------------------------------ HTTP and the log

    async def _send(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        credentials: Credentials | None = None,
    ) -> Fetched:
        return await fetch(
            self.http,
            method,
            url,
            json_body=json_body,
            form=form,
            headers=dict(headers or {}),
            credentials=credentials,
            timeout=self.timeout,
            max_bytes=self.max_response_bytes,
            guard=self.guard,
        )

    @property
    def guard(self) -> Guard:
        """The private-address guard for this document's requests (DESIGN §4)."""
        return Guard(
            allow_private=self.ai.params.swaig_allow_private_urls,
            document_host=self.context.document_host,
            exempt=self.guard_exempt,
        )

    def log_native(self, name: str, command_arg: str, response: str) -> None:
        """A native function the engine itself carried out (gather_submit) goes in the swaig log."""
        self._log(name, command_arg, None, {}, {"response": response})

    def _log(
        self, name: str, command_arg: str, url: str | None, post_data: dict[str, Any], answer: Any
    ) -> SwaigLogEntry:
        entry = SwaigLogEntry(
            command_name=name,
            command_arg=command_arg,
            epoch_time=int(self.clock.time()),
            url=safe_url(url) if url else None,
            post_data=post_data,
            post_response=answer,
        )
        self.swaig_log.append(entry)
        return entry

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning("SWAIG %s", message)


_EMPTY_DATA_MAP = DataMap()


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _json_answer(fetched: Fetched) -> tuple[Any, str | None]:
    """The parsed JSON answer, or None and what went wrong."""
    if not fetched.ok:
        return {"error": fetched.error}, fetched.error
    text = fetched.body.decode("utf-8", errors="replace").strip()
    if not text:
        return None, f"its webhook gave an empty answer (HTTP {fetched.status})"
    try:
        return load_json(text), None
    except LimitExceeded as exc:  # deeper than the call can copy, render and record
        return None, f"its webhook answer is {exc.message} (HTTP {fetched.status})"
    except ValueError:
        return None, f"its webhook answer is not JSON (HTTP {fetched.status})"
