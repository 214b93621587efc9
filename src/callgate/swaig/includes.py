"""SWAIG `includes`: remote function definitions fetched with SignalWire's get_signature request.

The request is a POST of `{"action": "get_signature", "functions": [...], "content_type":
"text/swaig", "content_disposition": "function signature request", "version": "2.0"}` (plus the
entry's `meta_data`, project and space ids when set) with basic auth from the URL's `user:pass@`,
else `auth_user`/`auth_password`, else the seed's `user`/`pass`. The answer may be a list of
definitions, one definition, or `{functions: [...], defaults: {...}}`; every definition returned
is registered, named in the request or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from callgate.swaig.fetch import Credentials, split_credentials
from callgate.swml.models import Function, Include, SwaigDefaults


@dataclass
class Signatures:
    functions: list[Function] = field(default_factory=list)
    defaults: SwaigDefaults | None = None
    problems: list[str] = field(default_factory=list)


def include_target(include: Include) -> tuple[str, Credentials | None]:
    """The include's URL without credentials, and the credentials to send."""
    url, embedded = split_credentials(include.url)
    if embedded is not None:
        return url, embedded
    extra = include.model_extra or {}
    user = extra.get("auth_user") or include.user
    password = extra.get("auth_password") or include.password
    if user is None and password is None:
        return url, None
    return url, Credentials(str(user or ""), str(password or ""))


def signature_request(include: Include, project_id: str, space_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "action": "get_signature",
        "functions": list(include.functions),
        "content_type": "text/swaig",
        "content_disposition": "function signature request",
        "version": "2.0",
    }
    if include.meta_data is not None:
        body["meta_data"] = include.meta_data
    if project_id:
        body["project_id"] = project_id
    if space_id:
        body["space_id"] = space_id
    return body


def read_signatures(answer: Any) -> Signatures:
    """Definitions from a get_signature answer; bad entries are reported, the rest kept."""
    out = Signatures()
    entries: list[Any]
    if isinstance(answer, list):
        entries = answer
    elif isinstance(answer, dict) and isinstance(answer.get("functions"), list):
        entries = answer["functions"]
        if isinstance(answer.get("defaults"), dict):
            try:
                out.defaults = SwaigDefaults.model_validate(answer["defaults"])
            except ValidationError as exc:
                out.problems.append(f"defaults: {_first_error(exc)}")
    elif isinstance(answer, dict) and "function" in answer:
        entries = [answer]
    else:
        out.problems.append("answer is neither a list of functions, a function, nor {functions, defaults}")
        return out
    for index, entry in enumerate(entries):
        try:
            out.functions.append(Function.model_validate(entry))
        except ValidationError as exc:
            out.problems.append(f"functions[{index}]: {_first_error(exc)}")
    return out


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error.get("loc", ()))
    return f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid"))


def adopt(
    function: Function, include_url: str, creds: Credentials | None, defaults: SwaigDefaults | None
) -> Function:
    """An included function made callable: without its own web_hook_url it is called at the answer's
    `defaults.web_hook_url`, else at the include's URL with the include's credentials."""
    if function.web_hook_url or function.data_map is not None:
        return function
    update: dict[str, Any] = {}
    if defaults is not None and defaults.web_hook_url:
        update["web_hook_url"] = defaults.web_hook_url
        if function.web_hook_auth_user is None and defaults.web_hook_auth_user is not None:
            update["web_hook_auth_user"] = defaults.web_hook_auth_user
        if function.web_hook_auth_password is None and defaults.web_hook_auth_password is not None:
            update["web_hook_auth_password"] = defaults.web_hook_auth_password
    else:
        update["web_hook_url"] = include_url
        if creds is not None and function.web_hook_auth_user is None:
            update["web_hook_auth_user"] = creds.user
            update["web_hook_auth_password"] = creds.password
    return function.model_copy(update=update)
