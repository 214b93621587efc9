"""Load a SWML document (YAML or JSON; a file, a text or an http(s) URL) into `Document`.

A section is a list of verb objects. An object with several keys is several verbs in order, and a
`label` key in such an object labels the verb after it (the seed writes `- label: ai` + `ai: {...}`).
A bare string item (`- answer`) is a verb without arguments. A document that is only `{ai: {...}}`
(no `sections`) is accepted, with a warning, as `sections: {main: [{ai: ...}]}`.

Errors raise `DocumentError`; warnings come back in `LoadResult.warnings`. Every issue names the field
path and, when the text is known, the line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import ValidationError

from callgate.swml.checks import check_ai
from callgate.swml.errors import DocumentError, DocumentLimitError, Issue, IssueCollector, Severity
from callgate.swml.fetch import CallInfo, Fetched, fetch_text, fetch_text_sync, is_url
from callgate.swml.known import KNOWN_VERBS
from callgate.swml.limits import (
    MAX_DOCUMENT_BYTES,
    LimitExceeded,
    check_data_depth,
    check_size,
    load_json,
    load_yaml,
)
from callgate.swml.lines import LineMap, Loc, format_path
from callgate.swml.models import AI, Document, Verb
from callgate.swml.syntax import SyntaxProblem, json_problem, yaml_problem
from callgate.swml.verbs import check_verb

_TOP_LEVEL = frozenset({"version", "sections"})


@dataclass
class LoadResult:
    """A document that loaded, the warnings about it, and — when fetched — the call it was fetched for."""

    document: Document
    warnings: list[Issue] = field(default_factory=list)
    source: str | None = None
    # For a URL: the call whose call_id the document's server saw; reuse it for every SWAIG request.
    call: CallInfo | None = None
    # For a URL: its host, which is allowed as a webhook target even when private.
    origin_host: str | None = None


# ---------------------------------------------------------------- text → data + lines


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps `+15551234567` a string: in SWML it is a phone number, never an int."""


_Loader.yaml_implicit_resolvers = {
    key: list(value) for key, value in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.yaml_implicit_resolvers["+"] = [
    ("tag:yaml.org,2002:str", re.compile(r"^\+[0-9]{5,15}$")),
    *_Loader.yaml_implicit_resolvers.get("+", []),
]


def _fail(message: str, *, source: str | None, line: int | None = None) -> DocumentError:
    return DocumentError([Issue(Severity.ERROR, "", line, message, source)])


def _refuse(exc: LimitExceeded, *, source: str | None, lines: LineMap | None = None) -> DocumentLimitError:
    line = exc.line if exc.line is not None or lines is None else lines.line_for(exc.loc)
    return DocumentLimitError([Issue(Severity.ERROR, format_path(exc.loc), line, exc.message, source)])


def _compose(text: str) -> yaml.Node | None:
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _syntax_failure(kind: str, problem: SyntaxProblem, source: str | None) -> DocumentError:
    """`invalid YAML: <problem> (column C), in the <construct> that began at line L, column C`."""
    column = f" (column {problem.column})" if problem.column is not None else ""
    began = f", in {problem.began}" if problem.began else ""
    return _fail(f"invalid {kind}: {problem.problem}{column}{began}", source=source, line=problem.line)


def read_text(text: str, *, source: str | None = None) -> tuple[Any, LineMap]:
    """Parse YAML or JSON text into plain data and the line of every key (raises DocumentError;
    DocumentLimitError past the limits of `swml.limits`)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        check_size(len(text))  # characters: a cheap lower bound of the bytes
    except LimitExceeded as exc:
        raise _refuse(exc, source=source) from None
    if text.lstrip().startswith(("{", "[")):
        return _read_json(text, source)
    try:
        data, node = load_yaml(text, _Loader)
    except yaml.YAMLError as exc:  # the reader refuses control characters up front, too
        raise _syntax_failure("YAML", yaml_problem(exc, text), source) from exc
    except LimitExceeded as exc:
        raise _refuse(exc, source=source) from None
    if node is None:
        raise _fail("the document is empty", source=source)
    return data, LineMap.from_node(node)


def _read_json(text: str, source: str | None) -> tuple[Any, LineMap]:
    # JSON gets JSON's own syntax errors; its lines still come from YAML (JSON is YAML).
    try:
        data = load_json(text)
    except json.JSONDecodeError as exc:
        raise _syntax_failure("JSON", json_problem(exc), source) from exc
    except LimitExceeded as exc:
        raise _refuse(exc, source=source) from None
    try:
        node = _compose(text)
    except (yaml.YAMLError, RecursionError):
        node = None
    return data, LineMap.from_node(node) if node is not None else LineMap()


# ---------------------------------------------------------------- data → Document


class _Parser:
    def __init__(self, issues: IssueCollector, allowed_hosts: Iterable[str]) -> None:
        self.issues = issues
        self.allowed_hosts = tuple(allowed_hosts)

    def document(self, data: Any, loc: Loc) -> tuple[str, dict[str, list[Verb]]]:
        if not isinstance(data, Mapping):
            self.issues.error(
                loc, f"a SWML document must be an object with `version` and `sections` (got {_kind(data)})"
            )
            return "1.0.0", {}
        version = self._version(data, loc)
        sections_raw = data.get("sections")
        extra = [key for key in data if key not in _TOP_LEVEL]
        if sections_raw is None and "ai" in data:
            self.issues.warning(loc, "no `sections`: the document is read as `sections: {main: [{ai: ...}]}`")
            extra.remove("ai")
            sections = {"main": self.items({"ai": data["ai"]}, loc)}
        elif "sections" not in data:
            self.issues.error(
                (*loc, "sections"), "missing `sections` (a map of section name → list of verbs)"
            )
            sections = {}
        else:
            sections = self.sections(sections_raw, (*loc, "sections"))
        for key in extra:
            self.issues.warning((*loc, key), f"unknown top-level field {key!r} (ignored)")
        return version, sections

    def _version(self, data: Mapping[str, Any], loc: Loc) -> str:
        version = data.get("version", "1.0.0")
        if isinstance(version, int | float) and not isinstance(version, bool):
            version = str(version)
        if not isinstance(version, str):
            self.issues.error(
                (*loc, "version"), f"`version` must be a string such as '1.0.0' (got {_kind(version)})"
            )
            return "1.0.0"
        return version

    def sections(self, raw: Any, loc: Loc) -> dict[str, list[Verb]]:
        if not isinstance(raw, Mapping):
            self.issues.error(
                loc, f"`sections` must be a map of section name → list of verbs (got {_kind(raw)})"
            )
            return {}
        if "main" not in raw:
            self.issues.error(loc, "`sections` has no `main` section (where a call starts)")
        return {str(name): self.verb_list(value, (*loc, str(name))) for name, value in raw.items()}

    def verb_list(self, raw: Any, loc: Loc) -> list[Verb]:
        if not isinstance(raw, list):
            self.issues.error(loc, f"a section must be a list of verbs (got {_kind(raw)})")
            return []
        verbs: list[Verb] = []
        for index, item in enumerate(raw):
            verbs.extend(self.items(item, (*loc, index)))
        return verbs

    def items(self, item: Any, loc: Loc) -> list[Verb]:
        """The verbs of one list item: a bare verb name, or an object of one or more verbs."""
        if isinstance(item, str):
            return [self.verb(item, None, loc, None)]
        if not isinstance(item, Mapping) or not item:
            self.issues.error(loc, f"a verb must be an object such as {{answer: {{}}}} (got {_kind(item)})")
            return []
        verbs: list[Verb] = []
        keys = list(item)
        label: str | None = None
        for position, key in enumerate(keys):
            name, args, vloc = str(key), item[key], (*loc, str(key))
            if name == "label" and position < len(keys) - 1:
                check_verb("label", args, vloc, self.issues)
                label = str(args)
                continue
            verbs.append(self.verb(name, args, vloc, label))
            label = None
        return verbs

    def verb(self, name: str, args: Any, loc: Loc, label: str | None) -> Verb:
        if name == "label":
            label = str(args) if args is not None else None
        if name not in KNOWN_VERBS:
            self.issues.warning(loc, f"unknown verb {name!r} (kept; callgate will not run it)")
        if name == "ai":
            return Verb(name=name, args=self.ai(args, loc), label=label, path=_path(loc))
        check_verb(name, args, loc, self.issues)
        self._nested(name, args, loc)
        return Verb(name=name, args=args, label=label, path=_path(loc))

    def ai(self, args: Any, loc: Loc) -> Any:
        try:
            ai = AI.model_validate({} if args is None else args)
        except ValidationError as exc:
            self.issues.validation_errors(exc, loc, args)
            return args
        check_ai(ai, loc, self.issues, allowed_hosts=self.allowed_hosts, check_swml=self.nested_swml)
        return ai

    def nested_swml(self, data: Any, loc: Loc) -> None:
        """An action's `SWML` value is a document of its own (a string form is a template: not checked)."""
        if isinstance(data, Mapping) and "sections" not in data:
            self.issues.warning(loc, "a SWML action needs `sections`")
            return
        self.document(data, loc)

    def _nested(self, name: str, args: Any, loc: Loc) -> None:
        """Verb lists inside switch / cond / execute are checked like sections."""
        if name == "switch" and isinstance(args, Mapping):
            cases = args.get("case")
            for case, verbs in cases.items() if isinstance(cases, Mapping) else ():
                self._nested_list(verbs, (*loc, "case", str(case)))
            self._nested_list(args.get("default"), (*loc, "default"))
        elif name == "cond" and isinstance(args, list):
            for index, entry in enumerate(args):
                if isinstance(entry, Mapping):
                    self._nested_list(entry.get("then"), (*loc, index, "then"))
                    self._nested_list(entry.get("else"), (*loc, index, "else"))
        elif name == "execute" and isinstance(args, Mapping):
            self._nested_list(args.get("on_return"), (*loc, "on_return"))

    def _nested_list(self, raw: Any, loc: Loc) -> None:
        if isinstance(raw, list):
            self.verb_list(raw, loc)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}" if len(repr(value)) <= 40 else type(value).__name__


def _path(loc: Loc) -> str:
    return format_path(loc)


def parse_document(
    data: Any,
    *,
    source: str | None = None,
    lines: LineMap | None = None,
    allowed_hosts: Iterable[str] = (),
) -> LoadResult:
    """Turn parsed YAML/JSON data into a `Document` (raises DocumentError listing every error).

    `allowed_hosts` are webhook hosts not warned about even if private (the host that served the document).
    Data nested deeper than `swml.limits.MAX_DEPTH` (an inline document, say) raises DocumentLimitError.
    """
    try:
        check_data_depth(data)
    except LimitExceeded as exc:
        raise _refuse(exc, source=source, lines=lines) from None
    issues = IssueCollector(source=source, lines=lines)
    if lines is not None:
        for loc, _line in lines.duplicates:
            issues.warning(loc, "this key is repeated: only its last value is used")
    version, sections = _Parser(issues, allowed_hosts).document(data, ())
    if issues.has_errors:
        raise DocumentError(issues.issues)
    document = Document(version=version, sections=sections, source=source)
    return LoadResult(document=document, warnings=issues.warnings, source=source)


def load_text(text: str, *, source: str | None = None, allowed_hosts: Iterable[str] = ()) -> LoadResult:
    """Load a document from YAML or JSON text."""
    data, lines = read_text(text, source=source)
    return parse_document(data, source=source, lines=lines, allowed_hosts=allowed_hosts)


def _from_fetched(fetched: Fetched, call: CallInfo) -> LoadResult:
    data, lines = read_text(fetched.text, source=fetched.url)
    if not isinstance(data, Mapping):
        kind = fetched.content_type or "no content type"
        raise _fail(
            f"the server did not answer with a SWML document ({kind}, {_kind(data)})", source=fetched.url
        )
    result = parse_document(data, source=fetched.url, lines=lines, allowed_hosts=[fetched.host])
    result.call = call
    result.origin_host = fetched.host
    return result


async def fetch_document(
    url: str,
    *,
    call: CallInfo | None = None,
    timeout: float = 10.0,
    vars: dict[str, Any] | None = None,
    envs: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    client: httpx.AsyncClient | None = None,
    extensions: dict[str, Any] | None = None,
) -> LoadResult:
    """Fetch and load a document from an http(s) URL as SignalWire does (POST of the call's details).

    The `CallInfo` used (a fresh call_id unless `call` is given) comes back as `LoadResult.call`.
    """
    call = call or CallInfo()
    fetched = await fetch_text(
        url,
        call=call,
        timeout=timeout,
        vars=vars,
        envs=envs,
        params=params,
        client=client,
        extensions=extensions,
    )
    return _from_fetched(fetched, call)


def load_document(source: str | Path, *, call: CallInfo | None = None, timeout: float = 10.0) -> LoadResult:
    """Load a document from a file path or an http(s) URL (fetched synchronously)."""
    if isinstance(source, str) and is_url(source):
        call = call or CallInfo()
        return _from_fetched(fetch_text_sync(source, call=call, timeout=timeout), call)
    path = Path(source)
    name = str(source)
    try:
        with path.open("rb") as file:
            # One byte past the limit is enough to know the file is too large.
            raw = file.read(MAX_DOCUMENT_BYTES + 1)
            if len(raw) > MAX_DOCUMENT_BYTES:
                check_size(max(len(raw), path.stat().st_size))
    except LimitExceeded as exc:
        raise _refuse(exc, source=name) from None
    except OSError as exc:
        raise _fail(f"cannot read the file: {exc.strerror or exc}", source=name) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(f"the file is not UTF-8 text: {exc}", source=name) from exc
    return load_text(text, source=name)
