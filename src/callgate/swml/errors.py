"""Problems found in a SWML document: each names the field path and, when known, the line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from callgate.swml.lines import LineMap, Loc, format_path


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem: `path` is a field path such as `sections.main[0].ai.SWAIG.functions[2].function`."""

    severity: Severity
    path: str
    line: int | None
    message: str
    source: str | None = None

    def __str__(self) -> str:
        where = self.source or "<document>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        subject = f"{self.path}: " if self.path else ""
        return f"{where}: {subject}{self.message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "severity": str(self.severity),
            "path": self.path,
            "line": self.line,
            "message": self.message,
            "source": self.source,
        }


class DocumentError(Exception):
    """The document cannot be used. `issues` holds every error (and the warnings found on the way)."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        errors = self.errors
        first = str(errors[0]) if errors else "invalid document"
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        super().__init__(first + more)

    @property
    def errors(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity is Severity.WARNING]


class DocumentLimitError(DocumentError):
    """The document is beyond what callgate reads at all (`swml.limits`: size, nesting, YAML aliases;
    or a fetch that ran out of time): it was not checked, so `validate` exits 2 rather than 1."""


class IssueCollector:
    """Gathers issues for one document, turning field paths into `path` strings and lines."""

    def __init__(self, *, source: str | None, lines: LineMap | None) -> None:
        self.source = source
        self.lines = lines or LineMap()
        self.issues: list[Issue] = []

    def add(self, severity: Severity, loc: Loc, message: str) -> None:
        issue = Issue(severity, format_path(loc), self.lines.line_for(loc), message, self.source)
        if issue not in self.issues:
            self.issues.append(issue)

    def error(self, loc: Loc, message: str) -> None:
        self.add(Severity.ERROR, loc, message)

    def warning(self, loc: Loc, message: str) -> None:
        self.add(Severity.WARNING, loc, message)

    @property
    def has_errors(self) -> bool:
        return any(issue.severity is Severity.ERROR for issue in self.issues)

    @property
    def warnings(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity is Severity.WARNING]

    def validation_errors(self, exc: ValidationError, prefix: Loc, data: Any) -> None:
        """Report a pydantic ValidationError of the value `data` found at `prefix`."""
        by_loc: dict[Loc, list[str]] = {}
        for err in exc.errors():
            loc = (*prefix, *_document_loc(err["loc"], data, missing=err["type"] == "missing"))
            messages = by_loc.setdefault(loc, [])
            message = _message(err)
            if message not in messages:
                messages.append(message)
        for loc, messages in by_loc.items():
            # A value that fits none of a union's members yields one message per member.
            self.error(loc, messages[0] if len(messages) == 1 else "; or ".join(messages))


def _document_loc(raw: tuple[int | str, ...], data: Any, *, missing: bool) -> Loc:
    """Map a pydantic error location onto the document: drop union-member and validator tags."""
    out: list[str | int] = []
    current = data
    for index, part in enumerate(raw):
        if _has_child(current, part):
            out.append(part)
            current = current[part]
        elif missing and index == len(raw) - 1 and isinstance(current, Mapping):
            out.append(part)  # the name of the missing field
    return tuple(out)


def _has_child(value: Any, part: int | str) -> bool:
    if isinstance(value, Mapping):
        return part in value
    return isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)


def _message(err: Mapping[str, Any]) -> str:
    message = str(err.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    kind = str(err.get("type", ""))
    value = err.get("input")
    loc = err.get("loc") or ()
    if kind == "missing" and loc:
        return f"required field {str(loc[-1])!r} is missing"
    if kind != "missing" and "regular expression" not in message and _short_scalar(value):
        message = f"{message} (got {value!r})"
    return message


def _short_scalar(value: Any) -> bool:
    return (isinstance(value, str | int | float | bool) and len(repr(value)) <= 60) or value is None
