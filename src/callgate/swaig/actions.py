"""SWAIG output actions as typed values, parsed from the JSON a data_map output or a webhook returns.

SignalWire writes actions as a list of one-key objects (`[{say: …}, {stop: true}]`), but an object
may carry several keys (`{SWML: …, transfer: "true"}`, `{SWML: …, stop: true}`); those run in key
order. Booleans arrive as `true` or `"true"`. A malformed action never raises: it becomes an
`UnknownAction` and a warning, so one bad entry cannot lose the rest of a function's result.

Evaluating actions happens here; carrying them out on a call is the conversation engine's job.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from callgate.swml.types import parse_bool

log = logging.getLogger(__name__)

# SignalWire clamps hold to 15 minutes; 5 minutes when no timeout is given.
HOLD_DEFAULT_SECONDS = 300
HOLD_MAX_SECONDS = 900


@dataclass(frozen=True)
class Say:
    """Speak `text` to the caller (not a model turn)."""

    text: str

    def to_json(self) -> dict[str, Any]:
        return {"say": self.text}


@dataclass(frozen=True)
class Stop:
    """End the AI session; the call ends (DESIGN §3: assistant-ended-call)."""

    def to_json(self) -> dict[str, Any]:
        return {"stop": True}


@dataclass(frozen=True)
class Hangup:
    """Hang up the call."""

    def to_json(self) -> dict[str, Any]:
        return {"hangup": True}


@dataclass(frozen=True)
class Swml:
    """Run a SWML document. `transfer`: the call leaves the agent for good (SDK `connect(final=True)`)."""

    document: dict[str, Any]
    transfer: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"SWML": self.document}
        if self.transfer:
            out["transfer"] = "true"
        return out


@dataclass(frozen=True)
class ToggleFunctions:
    """Switch functions on or off: `(name, active)` pairs, in order."""

    changes: list[tuple[str, bool]]

    def to_json(self) -> dict[str, Any]:
        return {"toggle_functions": [{"function": n, "active": a} for n, a in self.changes]}


@dataclass(frozen=True)
class SetMetaData:
    """Merge `data` into the calling function's meta_data (scoped by its meta_data_token)."""

    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"set_meta_data": self.data}


@dataclass(frozen=True)
class UnsetMetaData:
    keys: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"unset_meta_data": self.keys}


@dataclass(frozen=True)
class SetGlobalData:
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"set_global_data": self.data}


@dataclass(frozen=True)
class UnsetGlobalData:
    keys: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"unset_global_data": self.keys}


@dataclass(frozen=True)
class ContextSwitch:
    """Replace the system prompt; `user_prompt` is injected as the user's words."""

    system_prompt: str | None = None
    user_prompt: str | None = None
    consolidate: bool = False
    full_reset: bool = False

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"consolidate": self.consolidate}
        if self.system_prompt is not None:
            body["system_prompt"] = self.system_prompt
        if self.user_prompt is not None:
            body["user_prompt"] = self.user_prompt
        if self.full_reset:
            body["full_reset"] = True
        return {"context_switch": body}


@dataclass(frozen=True)
class UserInput:
    """Queue `text` as if the caller had said it."""

    text: str

    def to_json(self) -> dict[str, Any]:
        return {"user_input": self.text}


@dataclass(frozen=True)
class PlaybackBg:
    """Play `file` in the background; `wait`: finish it before the conversation continues."""

    file: str
    wait: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"playback_bg": {"file": self.file, "wait": self.wait}}


@dataclass(frozen=True)
class StopPlaybackBg:
    def to_json(self) -> dict[str, Any]:
        return {"stop_playback_bg": True}


@dataclass(frozen=True)
class BackToBackFunctions:
    """Let the model call another function right after this one without speaking in between."""

    enabled: bool

    def to_json(self) -> dict[str, Any]:
        return {"back_to_back_functions": self.enabled}


@dataclass(frozen=True)
class Hold:
    """Put the caller on hold for at most `timeout` seconds (0..900)."""

    timeout: int = HOLD_DEFAULT_SECONDS

    def to_json(self) -> dict[str, Any]:
        return {"hold": self.timeout}


@dataclass(frozen=True)
class WaitForUser:
    """Stay silent until the caller speaks (native `wait_for_user`, SDK `wait_for_user` action)."""

    enabled: bool = True
    timeout: float | None = None
    answer_first: bool = False

    def to_json(self) -> dict[str, Any]:
        value: Any = "answer_first" if self.answer_first else self.timeout or self.enabled
        return {"wait_for_user": value}


@dataclass(frozen=True)
class WaitSeconds:
    """callgate's native `wait_seconds`: the engine waits this long (on its clock) before the model
    receives the function's result."""

    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"wait_seconds": self.seconds}


@dataclass(frozen=True)
class ChangeContext:
    """Switch to another named context of `prompt.contexts`."""

    name: str

    def to_json(self) -> dict[str, Any]:
        return {"change_context": self.name}


@dataclass(frozen=True)
class ChangeStep:
    name: str

    def to_json(self) -> dict[str, Any]:
        return {"change_step": self.name}


@dataclass(frozen=True)
class UnknownAction:
    """An action callgate does not act on (or could not read); kept for the record."""

    name: str
    value: Any = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {self.name: self.value}


Action = (
    Say
    | Stop
    | Hangup
    | Swml
    | ToggleFunctions
    | SetMetaData
    | UnsetMetaData
    | SetGlobalData
    | UnsetGlobalData
    | ContextSwitch
    | UserInput
    | PlaybackBg
    | StopPlaybackBg
    | BackToBackFunctions
    | Hold
    | WaitForUser
    | WaitSeconds
    | ChangeContext
    | ChangeStep
    | UnknownAction
)

# Keys SignalWire documents or its SDK emits that callgate knows but does not act on: kept, not warned.
QUIET_UNKNOWN = frozenset(
    {
        "settings",
        "add_dynamic_hints",
        "clear_dynamic_hints",
        "end_of_speech_timeout",
        "speech_event_timeout",
        "functions_on_speaker_timeout",
        "extensive_data",
        "replace_in_history",
        "post_process",
    }
)


class ActionError(ValueError):
    """One action's value has the wrong shape."""


def _flag(value: Any, name: str) -> bool:
    parsed = parse_bool(value)
    if not isinstance(parsed, bool):
        raise ActionError(f"{name}: expected true or false, got {value!r}")
    return parsed


def _text(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ActionError(f"{name}: expected text, got {type(value).__name__}")


def _keys(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(k, str) for k in value):
        return list(value)
    if isinstance(value, dict):
        return [str(k) for k in value]
    raise ActionError(f"{name}: expected a key or a list of keys, got {value!r}")


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    raise ActionError(f"{name}: expected an object, got {type(value).__name__}")


def _toggles(value: Any) -> ToggleFunctions:
    entries = value if isinstance(value, list) else [value]
    changes: list[tuple[str, bool]] = []
    for entry in entries:
        if not isinstance(entry, dict) or "function" not in entry:
            raise ActionError(f"toggle_functions: each entry needs `function`, got {entry!r}")
        active = _flag(entry.get("active", True), "toggle_functions.active")
        names = entry["function"]
        for fn in names if isinstance(names, list) else [names]:
            changes.append((_text(fn, "toggle_functions.function"), active))
    return ToggleFunctions(changes)


def _swml(value: Any) -> Swml:
    document = value
    if isinstance(value, str):
        try:
            document = json.loads(value)
        except ValueError as exc:
            raise ActionError(f"SWML: text is not a JSON document ({exc})") from exc
    if not isinstance(document, dict):
        raise ActionError(f"SWML: expected a document object, got {type(document).__name__}")
    document = dict(document)
    # The SDK's execute_swml() puts `transfer` inside the document; connect() puts it beside it.
    transfer = _flag(document.pop("transfer"), "SWML.transfer") if "transfer" in document else False
    return Swml(document=document, transfer=transfer)


def _context_switch(value: Any) -> ContextSwitch:
    if isinstance(value, str):
        return ContextSwitch(system_prompt=value)
    body = _mapping(value, "context_switch")
    system = body.get("system_prompt")
    user = body.get("user_prompt")
    return ContextSwitch(
        system_prompt=None if system is None else _text(system, "context_switch.system_prompt"),
        user_prompt=None if user is None else _text(user, "context_switch.user_prompt"),
        consolidate=_flag(body.get("consolidate", False), "context_switch.consolidate"),
        full_reset=_flag(body.get("full_reset", False), "context_switch.full_reset"),
    )


def _playback(value: Any) -> PlaybackBg:
    if isinstance(value, str):
        return PlaybackBg(file=value)
    body = _mapping(value, "playback_bg")
    if "file" not in body:
        raise ActionError("playback_bg: `file` is required")
    return PlaybackBg(
        file=_text(body["file"], "playback_bg.file"), wait=_flag(body.get("wait", False), "wait")
    )


def _hold(value: Any) -> Hold:
    raw = value.get("timeout", HOLD_DEFAULT_SECONDS) if isinstance(value, dict) else value
    if isinstance(raw, bool) or raw is None:
        seconds = HOLD_DEFAULT_SECONDS
    else:
        try:
            seconds = int(float(raw))
        except (TypeError, ValueError) as exc:
            raise ActionError(f"hold: expected seconds, got {value!r}") from exc
    return Hold(timeout=max(0, min(seconds, HOLD_MAX_SECONDS)))


def _wait_for_user(value: Any) -> WaitForUser:
    if value == "answer_first":
        return WaitForUser(answer_first=True)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return WaitForUser(timeout=float(value))
    return WaitForUser(enabled=_flag(value, "wait_for_user"))


def _seconds(value: Any, name: str) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError) as exc:
        raise ActionError(f"{name}: expected seconds, got {value!r}") from exc


def parse_action(name: str, value: Any) -> Action | None:
    """One key of an action object → its action; None for a switch set to false (`stop: false`).

    Raises ActionError for a bad value; `parse_actions` turns that into an UnknownAction.
    """
    match name:
        case "say":
            return Say(_text(value, "say"))
        case "stop":
            return Stop() if _flag(value, "stop") else None
        case "hangup":
            return Hangup() if _flag(value, "hangup") else None
        case "SWML" | "swml":
            return _swml(value)
        case "toggle_functions":
            return _toggles(value)
        case "set_meta_data":
            return SetMetaData(_mapping(value, "set_meta_data"))
        case "unset_meta_data":
            return UnsetMetaData(_keys(value, "unset_meta_data"))
        case "set_global_data":
            return SetGlobalData(_mapping(value, "set_global_data"))
        case "unset_global_data":
            return UnsetGlobalData(_keys(value, "unset_global_data"))
        case "context_switch":
            return _context_switch(value)
        case "user_input":
            return UserInput(_text(value, "user_input"))
        case "playback_bg":
            return _playback(value)
        case "stop_playback_bg":
            return StopPlaybackBg() if _flag(value, "stop_playback_bg") else None
        case "back_to_back_functions":
            return BackToBackFunctions(_flag(value, "back_to_back_functions"))
        case "hold":
            return _hold(value)
        case "wait_for_user":
            return _wait_for_user(value)
        case "wait_seconds":
            return WaitSeconds(_seconds(value, "wait_seconds"))
        case "change_context":
            return ChangeContext(_text(value, "change_context"))
        case "change_step":
            return ChangeStep(_text(value, "change_step"))
    return UnknownAction(name, value, reason="quiet" if name in QUIET_UNKNOWN else "unknown action")


def parse_actions(raw: Any, warnings: list[str] | None = None) -> list[Action]:
    """Parse an `action` value (a list of objects, or one object) into actions, in order.

    `transfer` beside `SWML` in the same object marks that SWML action final. Problems are
    appended to `warnings` (and logged); they never raise.
    """
    problems: list[str] = []
    items = raw if isinstance(raw, list) else ([] if raw is None else [raw])
    actions: list[Action] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"action[{index}]: expected an object, got {item!r}")
            actions.append(UnknownAction("", item, reason="not an object"))
            continue
        transfer_flag: bool | None = None
        start = len(actions)
        for key, value in item.items():
            name = str(key)
            if name == "transfer":
                try:
                    transfer_flag = _flag(value, "transfer")
                except ActionError as exc:
                    problems.append(f"action[{index}].transfer: {exc}")
                continue
            try:
                action = parse_action(name, value)
            except ActionError as exc:
                problems.append(f"action[{index}].{name}: {exc}")
                action = UnknownAction(name, value, reason=str(exc))
            if isinstance(action, UnknownAction) and action.reason == "unknown action":
                problems.append(f"action[{index}]: unknown action {name!r} kept but not acted on")
            if action is not None:
                actions.append(action)
        if transfer_flag is not None:
            swml_positions = [i for i in range(start, len(actions)) if isinstance(actions[i], Swml)]
            if not swml_positions:
                problems.append(f"action[{index}]: `transfer` without an SWML action in the same object")
            for i in swml_positions:
                current = actions[i]
                if isinstance(current, Swml):
                    actions[i] = Swml(document=current.document, transfer=current.transfer or transfer_flag)
    for problem in problems:
        log.warning("SWAIG %s", problem)
    if warnings is not None:
        warnings.extend(problems)
    return actions


def actions_to_json(actions: list[Action]) -> list[dict[str, Any]]:
    """The SignalWire JSON form of `actions`, one object per action."""
    return [action.to_json() for action in actions]


__all__ = [
    "Action",
    "ActionError",
    "BackToBackFunctions",
    "ChangeContext",
    "ChangeStep",
    "ContextSwitch",
    "Hangup",
    "Hold",
    "PlaybackBg",
    "Say",
    "SetGlobalData",
    "SetMetaData",
    "Stop",
    "StopPlaybackBg",
    "Swml",
    "ToggleFunctions",
    "UnknownAction",
    "UnsetGlobalData",
    "UnsetMetaData",
    "UserInput",
    "WaitForUser",
    "WaitSeconds",
    "actions_to_json",
    "parse_action",
    "parse_actions",
]
