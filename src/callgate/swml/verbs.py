"""Light checks of the non-`ai` SWML verbs callgate runs; their arguments stay raw in `Verb.args`.

Only the shape callgate relies on is checked (required keys, basic types); SWML variables
(`${...}`) are accepted wherever a number or boolean is expected, since they are expanded at run time.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from callgate.swml.errors import IssueCollector
from callgate.swml.lines import Loc

Number = int | float | str
Flag = bool | str


class _Args(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Answer(_Args):
    max_duration: Number | None = None
    codecs: str | None = None


class Hangup(_Args):
    reason: Literal["hangup", "busy", "decline"] | None = None


class Play(_Args):
    url: str | None = None
    urls: list[str] | None = None
    volume: Number | None = None
    auto_answer: Flag | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _needs_media(self) -> Play:
        if self.url is None and self.urls is None:
            raise ValueError("play needs `url` or `urls`")
        return self


class Connect(_Args):
    to: str | None = None
    serial: list[Any] | None = None
    parallel: list[Any] | None = None
    serial_parallel: list[Any] | None = None
    from_: str | None = Field(default=None, alias="from")
    headers: list[Any] | dict[str, Any] | None = None
    timeout: Number | None = None
    max_duration: Number | None = None
    answer_on_bridge: Flag | None = None

    @model_validator(mode="after")
    def _needs_target(self) -> Connect:
        if all(v is None for v in (self.to, self.serial, self.parallel, self.serial_parallel)):
            raise ValueError("connect needs `to` (or `serial`, `parallel`, `serial_parallel`)")
        return self


class Transfer(_Args):
    dest: str
    params: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None


class SipRefer(_Args):
    to_uri: str
    status_url: str | None = None


class SendSms(_Args):
    to_number: str
    from_number: str
    body: str | None = None
    media: list[str] | None = None

    @model_validator(mode="after")
    def _needs_content(self) -> SendSms:
        if self.body is None and self.media is None:
            raise ValueError("send_sms needs `body` or `media`")
        return self


class Goto(_Args):
    label: str
    when: str | None = None
    max: Number | None = None


class SleepArgs(_Args):
    """`sleep: 5000`, `sleep: "${ms}"` or `sleep: {duration: 5000}`."""

    duration: Number

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"duration": value} if isinstance(value, int | float | str) else value


class Execute(_Args):
    dest: str
    params: dict[str, Any] | None = None
    on_return: list[Any] | dict[str, Any] | None = None


class Switch(_Args):
    variable: str
    case: dict[str, list[Any]]
    default: list[Any] | None = None


class CondEntry(_Args):
    when: str | None = None
    then: list[Any] | None = None
    else_: list[Any] | None = Field(default=None, alias="else")


class Request(_Args):
    url: str
    method: str
    headers: dict[str, Any] | None = None
    timeout: Number | None = None


_CHECKS: dict[str, TypeAdapter[Any]] = {
    "answer": TypeAdapter(Answer),
    "hangup": TypeAdapter(Hangup),
    "play": TypeAdapter(Play),
    "connect": TypeAdapter(Connect),
    "transfer": TypeAdapter(Transfer),
    "sip_refer": TypeAdapter(SipRefer),
    "send_sms": TypeAdapter(SendSms),
    "label": TypeAdapter(str | int),
    "goto": TypeAdapter(Goto),
    "set": TypeAdapter(dict[str, Any]),
    "unset": TypeAdapter(str | list[str]),
    "sleep": TypeAdapter(SleepArgs),
    "execute": TypeAdapter(Execute),
    "switch": TypeAdapter(Switch),
    "cond": TypeAdapter(list[CondEntry]),
    "request": TypeAdapter(Request),
    "record_call": TypeAdapter(dict[str, Any]),
}

# Verbs that may be written as a bare string in a section (`- answer`).
NO_ARGUMENT_VERBS = frozenset(
    {"answer", "hangup", "return", "denoise", "stop_denoise", "stop_record_call", "stop_tap", "record_call"}
)

CHECKED_VERBS = frozenset(_CHECKS) | {"return", "ai"}


def check_verb(name: str, args: Any, loc: Loc, issues: IssueCollector) -> None:
    """Report what is wrong with the arguments of verb `name` found at `loc` (nothing for unknown verbs)."""
    adapter = _CHECKS.get(name)
    if adapter is None:
        return
    if args is None and name in NO_ARGUMENT_VERBS:
        args = {}
    try:
        adapter.validate_python(args)
    except ValidationError as exc:
        issues.validation_errors(exc, loc, args)
