"""Syntax errors of YAML and JSON texts, told where the broken construct began as well as where the
parser noticed: an unclosed quote or bracket opened at line 3 is usually noticed lines later."""

from __future__ import annotations

import json
from dataclasses import dataclass

import yaml


@dataclass(frozen=True)
class SyntaxProblem:
    """`line`/`column` (1-based) are where the parser stopped; `began` says where the construct began."""

    problem: str
    line: int | None = None
    column: int | None = None
    began: str = ""  # e.g. "the quoted scalar that began at line 3, column 9", or ""


def _construct(context: str) -> str:
    # PyYAML's contexts read "while scanning a quoted scalar", "while parsing a flow sequence".
    for prefix in ("while scanning ", "while parsing "):
        if context.startswith(prefix):
            words = context[len(prefix) :].split(" ", 1)
            return words[1] if len(words) == 2 and words[0] in ("a", "an") else context[len(prefix) :]
    return context


def yaml_problem(exc: yaml.YAMLError, text: str) -> SyntaxProblem:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        began = ""
        start = exc.context_mark
        if exc.problem and exc.context and start is not None:
            construct = _construct(exc.context)
            began = f"the {construct} that began at line {start.line + 1}, column {start.column + 1}"
        elif exc.problem and exc.context:
            began = exc.context
        if mark is None:
            return SyntaxProblem(problem, began=began)
        return SyntaxProblem(problem, mark.line + 1, mark.column + 1, began)
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "?")
        return SyntaxProblem(f"{exc.reason} (character #x{code:04x})", line)
    return SyntaxProblem(str(exc))


def json_problem(exc: json.JSONDecodeError) -> SyntaxProblem:
    """JSON's own message, and the innermost object or list still open where it stopped."""
    opened = _open_bracket(exc.doc, exc.pos)
    began = ""
    if opened is not None:
        kind = "object" if exc.doc[opened] == "{" else "list"
        line = exc.doc.count("\n", 0, opened) + 1
        column = opened - (exc.doc.rfind("\n", 0, opened) + 1) + 1
        if line != exc.lineno:
            began = f"the {kind} that began at line {line}, column {column}"
    return SyntaxProblem(exc.msg, exc.lineno, exc.colno, began)


def _open_bracket(text: str, end: int) -> int | None:
    """Offset of the innermost `{` or `[` still open at `end` (strings skipped)."""
    stack: list[int] = []
    in_string = escaped = False
    for index in range(min(end, len(text))):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append(index)
        elif char in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else None
