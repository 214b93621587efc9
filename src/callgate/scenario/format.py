"""The scenario file format, version 1 (DESIGN §6): pydantic models and the loader.

Scenarios are callgate's own format, so the models are strict: an unknown key is an error naming the
key and its path, unlike SWML documents where unknown fields are kept and warned about.

callgate extension: `max_duration` (default 600 s of virtual time) caps the whole simulated call,
counted from the answer. When it is reached the caller hangs up (`customer-ended-call`) and any turns
not yet run are skipped. After the last turn the call runs until it ends by itself or reaches the cap.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from callgate.channels.sim import LegSpec
from callgate.durations import Duration
from callgate.scenario.model_server import ScriptEntry
from callgate.swml.limits import MAX_DEPTH, MAX_DOCUMENT_BYTES, LimitExceeded, load_json, load_yaml
from callgate.swml.lines import LineMap
from callgate.swml.syntax import SyntaxProblem, json_problem, yaml_problem
from callgate.telephony.base import EndedReason

DEFAULT_MAX_DURATION = 600.0
LLM_ROLES = ("agent", "summary", "consult", "post_prompt")
SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")
# An inline `agent:` sits one level under the scenario; the document limits apply to it as to a file.
SCENARIO_MAX_DEPTH = MAX_DEPTH + 1
SCENARIO_MAX_BYTES = 2 * MAX_DOCUMENT_BYTES


class ScenarioError(Exception):
    """A scenario file that cannot be read or does not follow the format; names the file and field."""

    def __init__(self, file: Path | str, problems: list[str]) -> None:
        self.file = str(file)
        self.problems = problems
        super().__init__("\n".join(f"{self.file}: {problem}" for problem in problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


# ---------------------------------------------------------------- call, http


class CallSpec(_Strict):
    """`call`: who is calling whom. Keys as written in the file: from, to, caller_name."""

    from_number: str = Field("+15550000001", validation_alias=AliasChoices("from", "from_number"))
    to_number: str = Field("+15550000002", validation_alias=AliasChoices("to", "to_number"))
    caller_name: str = "Caller"

    @field_validator("from_number", "to_number", mode="before")
    @classmethod
    def _quoted_number(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            # YAML reads +15551230000 as the integer 15551230000: the + is already lost.
            raise ValueError(f'write phone numbers in quotes ("+{value}"); YAML read {value} as a number')
        return value


class HttpStub(_Strict):
    """One stubbed outbound endpoint; `method` omitted matches any method."""

    method: str | None = None
    url: str
    json_body: Any = Field(None, validation_alias=AliasChoices("json", "json_body"))
    body: str | None = None
    status: int = Field(200, ge=100, le=599)
    headers: dict[str, str] = Field(default_factory=dict)
    delay: Duration = 0.0

    @field_validator("method")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value is not None else None

    @model_validator(mode="after")
    def _one_answer(self) -> HttpStub:
        if self.has_json and self.body is not None:
            raise ValueError("give either json or body, not both")
        return self

    @property
    def has_json(self) -> bool:
        """True when the stub answers JSON (even `json: null`)."""
        return "json_body" in self.model_fields_set


# ---------------------------------------------------------------- turns


class UserTurn(_Strict):
    user: str


class BargeTurn(_Strict):
    """The caller talks over the agent: said `after` the previous turn, without waiting for the
    agent to finish (barge-in cuts the agent's speech unless the document switches it off)."""

    barge: str
    after: Duration = 1.0


class WaitTurn(_Strict):
    wait: Duration


class DtmfTurn(_Strict):
    dtmf: str

    @field_validator("dtmf", mode="before")
    @classmethod
    def _digits(cls, value: Any) -> Any:
        # YAML reads `dtmf: 1` as an int; the caller pressed the key "1".
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and (not value or any(c not in "0123456789*#ABCDabcd" for c in value)):
            raise ValueError(f"DTMF digits must be 0-9, *, #, A-D: {value!r}")
        return value


class HangupTurn(_Strict):
    hangup: Literal[True] = True


Turn = UserTurn | BargeTurn | WaitTurn | DtmfTurn | HangupTurn
_TURN_KINDS: dict[str, type[_Strict]] = {
    "user": UserTurn,
    "barge": BargeTurn,
    "wait": WaitTurn,
    "dtmf": DtmfTurn,
    "hangup": HangupTurn,
}


# ---------------------------------------------------------------- expectations


class TransferExpect(_Strict):
    to: str | None = None
    mode: Literal["blind", "warm"] | None = None
    result: Literal["completed", "failed", "refused", "cancelled"] | None = None
    reason: str | None = None  # callgate extension: the failure code/reason, substring match


class FunctionExpect(_Strict):
    name: str
    arguments: dict[str, Any] | None = None


class HttpExpect(_Strict):
    method: str | None = None
    url: str
    json_body: Any = Field(None, validation_alias=AliasChoices("json", "json_body"))

    @field_validator("method")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value is not None else None

    @property
    def has_json(self) -> bool:
        return "json_body" in self.model_fields_set


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str | dict) else value


class Expect(_Strict):
    said: Annotated[list[str], BeforeValidator(_listify)] = Field(default_factory=list)
    never_said: Annotated[list[str], BeforeValidator(_listify)] = Field(default_factory=list)
    ended: EndedReason | None = None
    last_said: str | None = None
    # One transfer (as in DESIGN §6) or a list of them; each must match some transfer.
    transfer: Annotated[list[TransferExpect], BeforeValidator(_listify)] = Field(default_factory=list)
    functions: list[FunctionExpect] = Field(default_factory=list)
    http: list[HttpExpect] = Field(default_factory=list)


# ---------------------------------------------------------------- the scenario


class Scenario(_Strict):
    name: str
    agent: str | dict[str, Any]
    call: CallSpec = Field(default_factory=lambda: CallSpec.model_validate({}))
    # Normalised to a map by role; a plain list is the caller's agent's script.
    llm: dict[str, list[ScriptEntry]] = Field(default_factory=dict)
    http: list[HttpStub] = Field(default_factory=list)
    passthrough: Annotated[list[str], BeforeValidator(_listify)] = Field(default_factory=list)
    strict_http: bool = False
    legs: dict[str, LegSpec] = Field(default_factory=dict)
    turns: list[Turn] = Field(default_factory=list)
    expect: Expect = Field(default_factory=lambda: Expect.model_validate({}))
    max_duration: Duration = DEFAULT_MAX_DURATION

    @field_validator("agent", mode="before")
    @classmethod
    def _agent(cls, value: Any) -> Any:
        if isinstance(value, dict) or (isinstance(value, str) and value.strip()):
            return value
        raise ValueError("must be a path, a URL or an inline SWML document (a mapping)")

    @field_validator("llm", mode="before")
    @classmethod
    def _llm_by_role(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, list):
            return {"agent": value}
        if isinstance(value, dict):
            unknown = [key for key in value if key not in LLM_ROLES]
            if unknown:
                raise ValueError(f"unknown llm role {unknown[0]!r} (roles: {', '.join(LLM_ROLES)})")
            return value
        raise ValueError("must be a list of script entries, or a map of them by role")

    @field_validator("turns", mode="before")
    @classmethod
    def _turns(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [_parse_turn(index, item) for index, item in enumerate(value)]

    @field_validator("legs")
    @classmethod
    def _leg_turns(cls, legs: dict[str, LegSpec]) -> dict[str, LegSpec]:
        # A leg's turns follow the caller's grammar; check them here so mistakes name their path.
        for name, spec in legs.items():
            for index, item in enumerate(spec.turns):
                try:
                    _parse_turn(index, item)
                except ValueError as exc:
                    raise ValueError(f"legs.{name}.{exc}") from None
        return legs

    def leg_turns(self, name: str) -> list[Turn]:
        """The parsed turns of a declared leg (what that party says once it has answered)."""
        return [_parse_turn(index, item) for index, item in enumerate(self.legs[name].turns)]

    @property
    def agent_is_url(self) -> bool:
        return isinstance(self.agent, str) and self.agent.lower().startswith(("http://", "https://"))

    def script(self, role: str) -> list[ScriptEntry]:
        return self.llm.get(role, [])


def _parse_turn(index: int, item: Any) -> Turn:
    """One turn: `{user: …}`, `{wait: …}`, `{dtmf: …}`, `hangup` or `{hangup: true}`."""
    if item == "hangup":
        return HangupTurn()
    if isinstance(item, dict) and "barge" in item and set(item) <= {"barge", "after"}:
        item = {"barge": item["barge"], **({"after": item["after"]} if "after" in item else {})}
        try:
            return BargeTurn.model_validate(item)
        except ValidationError as exc:
            raise ValueError(f"turns[{index}].barge: {_first_message(exc)}") from None
    if not isinstance(item, dict) or len(item) != 1:
        raise ValueError(
            f"turns[{index}]: expected one of {{user: text}}, {{barge: text, after: duration}}, "
            f"{{wait: duration}}, {{dtmf: digits}}, hangup; got {item!r}"
        )
    (key,) = item
    model = _TURN_KINDS.get(key)
    if model is None:
        raise ValueError(f"turns[{index}]: unknown turn {key!r} (expected user, barge, wait, dtmf or hangup)")
    try:
        turn = model.model_validate(item)
    except ValidationError as exc:
        raise ValueError(f"turns[{index}].{key}: {_first_message(exc)}") from None
    assert isinstance(turn, UserTurn | BargeTurn | WaitTurn | DtmfTurn | HangupTurn)
    return turn


# ---------------------------------------------------------------- loading


def _first_message(exc: ValidationError) -> str:
    return _clean_message(exc.errors()[0]["msg"])


def _clean_message(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


# Parts of pydantic's error locations that name a union member or validator, not a field.
_LOC_MARKERS = {
    "str",
    "int",
    "float",
    "bool",
    "dict",
    "list",
    "UserTurn",
    "BargeTurn",
    "WaitTurn",
    "DtmfTurn",
    "HangupTurn",
}


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in _LOC_MARKERS or part.startswith("function-") or "[" in part:
            continue
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


_ALIASES = {"json_body": "json", "from_number": "from", "to_number": "to"}


_FINER = re.compile(r"^(\w+)\[(\d+)\]")


def _with_line(text: str, loc: tuple[int | str, ...], lines: LineMap | None) -> str:
    if lines is None:
        return text
    line = lines.line_for(loc)
    return f"{text} (line {line})" if line is not None else text


def describe_errors(exc: ValidationError, lines: LineMap | None = None) -> list[str]:
    """ValidationError → lines like `turns[2].wait: invalid duration 'abc'` or `unknown field 'foo'`,
    each followed by `(line N)` when the file's line map is known."""
    out: list[str] = []
    for error in exc.errors():
        raw = tuple(error["loc"])
        loc = tuple(_ALIASES.get(p, p) if isinstance(p, str) else p for p in raw)
        if error["type"] == "extra_forbidden":
            where = _path(loc[:-1])
            prefix = "" if where == "(top level)" else f"{where}: "
            out.append(_with_line(f"{prefix}unknown field {loc[-1]!r}", loc, lines))
            continue
        where, msg = _path(loc), _clean_message(error["msg"])
        # Validators that know a finer path (turns[2].wait) put it in front of the message.
        if msg.startswith((f"{where}[", f"{where}.")):
            finer = _FINER.match(msg)
            line_loc = (*loc, int(finer.group(2))) if finer and finer.group(1) == where else loc
            out.append(_with_line(msg, line_loc, lines))
        else:
            out.append(_with_line(f"{where}: {msg}", loc, lines))
    # Union members can repeat the same complaint; keep the first of each.
    return list(dict.fromkeys(out))


def parse_scenario(
    data: Any, *, file: Path | str, default_name: str | None = None, lines: LineMap | None = None
) -> Scenario:
    """Validate already-parsed data (a dict) as a scenario; raises ScenarioError naming file and field."""
    if not isinstance(data, dict):
        raise ScenarioError(file, [f"a scenario must be a mapping, got {type(data).__name__}"])
    if "name" not in data and default_name is not None:
        data = {**data, "name": default_name}
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(file, describe_errors(exc, lines)) from None


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as file:
            raw = file.read(SCENARIO_MAX_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(path, [f"cannot read: {exc.strerror or exc}"]) from None
    if len(raw) > SCENARIO_MAX_BYTES:
        raise ScenarioError(path, [f"larger than the {SCENARIO_MAX_BYTES}-byte limit for a scenario file"])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(path, ["not UTF-8 text"]) from None


def _parse_text(path: Path, text: str) -> tuple[Any, LineMap | None]:
    """The file's data and where each field sits (None for JSON, if its lines cannot be worked out).

    Read within the limits of `swml.limits` (depth, YAML aliases), so a hostile file is one bad
    scenario with a clear message, never a crash or a hang of the whole run."""
    try:
        if path.suffix.lower() == ".json":
            return load_json(text, max_depth=SCENARIO_MAX_DEPTH), _line_map(text)
        data, node = load_yaml(text, yaml.SafeLoader, max_depth=SCENARIO_MAX_DEPTH)
        return data, LineMap.from_node(node) if node is not None else None
    except json.JSONDecodeError as exc:
        problem = json_problem(exc)
        raise ScenarioError(
            path, [f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}{_began(problem)}"]
        ) from None
    except yaml.YAMLError as exc:
        problem = yaml_problem(exc, text)
        where = f" at line {problem.line}" if problem.line is not None else ""
        where += f", column {problem.column}" if problem.column is not None else ""
        raise ScenarioError(path, [f"invalid YAML{where}: {problem.problem}{_began(problem)}"]) from None
    except LimitExceeded as exc:
        line = f" (line {exc.line})" if exc.line is not None else ""
        raise ScenarioError(path, [f"{exc.message}{line}"]) from None


def _began(problem: SyntaxProblem) -> str:
    return f", in {problem.began}" if problem.began else ""


def _line_map(text: str) -> LineMap | None:
    """Where each field sits in a JSON text (JSON is YAML too); None if it cannot be worked out."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return None
    return LineMap.from_node(node) if node is not None else None


def read_document(path: Path) -> Any:
    """Parse a YAML or JSON file; raises ScenarioError for an unreadable, malformed or hostile file."""
    return _parse_text(path, _read_text(path))[0]


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; an `agent:` path must exist relative to the file."""
    data, lines = _parse_text(path, _read_text(path))
    scenario = parse_scenario(data, file=path, default_name=path.stem, lines=lines)
    if isinstance(scenario.agent, str) and not scenario.agent_is_url:
        agent_path = (path.parent / scenario.agent).resolve()
        if not agent_path.is_file():
            problem = f"agent: file not found: {scenario.agent} (looked at {agent_path})"
            raise ScenarioError(path, [_with_line(problem, ("agent",), lines)])
    return scenario
