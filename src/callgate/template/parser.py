"""Parse `${…}` / `%{…}` templates once into literal text and placeholder nodes.

A template is compiled into a tuple of parts: `str` for literal text, `Placeholder` for a
`${…}`. A placeholder whose body is plain text carries its parsed `Expression` (modifiers +
path) so expanding it is a dictionary walk; one with nested placeholders keeps its parts and is
parsed at expansion time, once the nested values are known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from callgate.template.phone import PREFIX_FORMATS, PhoneStyle

# A path step: a key (`name`) or a list index (`[3]`).
Segment = str | int
Case = Literal["lc", "uc"]

# Deeper nesting is kept as literal text; it bounds the recursion of expansion.
MAX_NESTING = 64

# Openers and the closer are the only tokens; no alternation can backtrack.
_TOKEN = re.compile(r"[$%@]\{|\}")

# Layout an author may put around a path (`${ args.x }`); other characters belong to keys.
_BLANK = " \t\r\n"


@dataclass(frozen=True, slots=True)
class Expression:
    """A placeholder body: the path to look up and the modifiers to apply to its text."""

    path: tuple[Segment, ...]
    case: Case | None = None
    encode: bool = False
    phone: PhoneStyle | None = None  # fmt_ph: (national, or fmt_ph:<format>:)

    @property
    def plain(self) -> bool:
        """True when no modifier turns the value into text (so its type can be kept)."""
        return self.case is None and not self.encode and self.phone is None


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One `${…}`: `static` when its body is literal, else `parts` to expand first.

    A function call `@{name arguments}` has `function` set and always keeps its `parts`: its body is
    text for the function, not a path."""

    static: Expression | None
    parts: tuple[Part, ...]
    function: bool = False


Part = str | Placeholder


@lru_cache(maxsize=8192)
def compile_template(text: str) -> tuple[Part, ...]:
    """Split `text` into literal strings and placeholders. Never raises.

    An unclosed `${` is literal text (anything complete inside it still expands); a `}` with
    no open placeholder is literal text.
    """
    if "{" not in text:
        return (text,) if text else ()
    frames: list[list[Part]] = [[]]
    openers: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        start = match.start()
        if start > pos:
            _add(frames[-1], text[pos:start])
        token = match.group()
        if token == "}":
            if openers:
                opener = openers.pop()
                frames[-2].append(_placeholder(frames.pop(), opener == "@{"))
            else:
                _add(frames[-1], token)
        elif len(openers) >= MAX_NESTING:
            _add(frames[-1], token)
        else:
            openers.append(token)
            frames.append([])
        pos = match.end()
    if pos < len(text):
        _add(frames[-1], text[pos:])
    # Unclosed placeholders fold back into their parent as text, innermost first.
    while openers:
        inner = frames.pop()
        _add(frames[-1], openers.pop())
        for part in inner:
            _add(frames[-1], part)
    return tuple(frames[0])


def _add(parts: list[Part], part: Part) -> None:
    """Append, merging adjacent literals so a compiled template stays short."""
    if isinstance(part, str) and parts and isinstance(parts[-1], str):
        parts[-1] += part
    else:
        parts.append(part)


def _placeholder(parts: list[Part], function: bool) -> Placeholder:
    if function:
        return Placeholder(None, tuple(parts), function=True)
    if all(isinstance(part, str) for part in parts):
        body = "".join(part for part in parts if isinstance(part, str))
        return Placeholder(parse_expression(body), ())
    return Placeholder(None, tuple(parts))


@lru_cache(maxsize=8192)
def parse_expression(body: str) -> Expression:
    """Parse a placeholder body: modifiers (`lc:`, `uc:`, `enc:`, `enc:url:`, `fmt_ph:`,
    `fmt_ph:national:`, `fmt_ph:international:`) then a path.

    Modifiers may be written in any order; the case change always applies before encoding
    (as on SignalWire, so `lc:enc:` and `enc:lc:` agree). With both `lc:` and `uc:` the
    leftmost wins. Any other `name:` is part of the path.
    """
    rest = body.strip(_BLANK)
    case: Case | None = None
    encode = False
    phone: PhoneStyle | None = None
    while True:
        head, sep, tail = rest.partition(":")
        if not sep:
            break
        if head == "lc" or head == "uc":
            if case is None:
                case = "lc" if head == "lc" else "uc"
        elif head == "enc":
            encode = True
            if tail.startswith("url:"):
                tail = tail[4:]
        elif head == "fmt_ph":
            phone = "national"
            name, colon, after = tail.partition(":")
            if colon and name.lower() in PREFIX_FORMATS:
                phone, tail = PREFIX_FORMATS[name.lower()], after
        else:
            break
        rest = tail.lstrip(_BLANK)
    return Expression(parse_path(rest), case, encode, phone)


@lru_cache(maxsize=8192)
def parse_path(text: str) -> tuple[Segment, ...]:
    """`a.b[0][1].c` → ("a", "b", 0, 1, "c"). Empty text → (), which resolves to nothing.

    A bracket holding a decimal integer is an index (negative ones never match); any other
    bracket content is a key. An unclosed `[` is part of the name.
    """
    text = text.strip(_BLANK)
    if not text:
        return ()
    segments: list[Segment] = []
    name: list[str] = []
    after_index = False
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == ".":
            if name or not after_index:
                segments.append("".join(name))
            name = []
            after_index = False
        elif char == "[" and (close := text.find("]", i + 1)) > 0:
            if name:
                segments.append("".join(name))
                name = []
            segments.append(_index(text[i + 1 : close]))
            after_index = True
            i = close
        else:
            name.append(char)
            after_index = False
        i += 1
    if name or not after_index:
        segments.append("".join(name))
    return tuple(segments)


def _index(raw: str) -> Segment:
    raw = raw.strip(_BLANK)
    digits = raw[1:] if raw.startswith("-") else raw
    # Long digit runs cannot index a list (and int() refuses very long ones).
    if digits.isascii() and digits.isdigit() and len(digits) <= 18:
        return int(raw)
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw
