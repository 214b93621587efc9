"""IMS text commands in the model's output: `<imsagent_hangup …/>` and `<imsagent_transfer_call …/>`.

`CommandFilter` sits between the model's text stream and speech. It never lets markup reach speech
and holds back only text that could still become a command (`<`, `<ims`, `<imsagent_hang…`); any
other `<` is spoken as soon as the next character shows it is not a command.

Parsing is lenient, as the IMS docs' own examples are: attributes may be separated by commas, values
may be double-quoted, single-quoted (also typographic quotes) or unquoted, and `/>` may follow a
space (a bare `>` also closes). Unknown `<imsagent_…>` commands, attributes that cannot be read and
commands still open at the end of the reply become `BadCommand`s, to be recorded, never spoken.
A closing tag such as `</imsagent_hangup>` is markup too: it is dropped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

# ---------------------------------------------------------------- pieces


@dataclass(frozen=True)
class Speech:
    text: str


@dataclass(frozen=True)
class HangupCommand:
    """Say `endword` (if any), then hang up."""

    endword: str
    raw: str = ""


@dataclass(frozen=True)
class TransferCommand:
    """Say `msg`, transfer to `callee`; on failure say `err_msg`."""

    caller: str
    callee: str
    msg: str
    err_msg: str
    raw: str


@dataclass(frozen=True)
class BadCommand:
    """Markup that is not a valid command: recorded in the timeline, never spoken."""

    raw: str
    reason: str


Command = HangupCommand | TransferCommand
Piece = Speech | HangupCommand | TransferCommand | BadCommand

# ---------------------------------------------------------------- scanning

_OPEN = "<imsagent_"
_CLOSE = "</imsagent_"
# A command longer than this without its closing `>` is given up on (the model went off the rails).
MAX_COMMAND_LENGTH = 2000
_AFTER_NAME = " \t\r\n,/>"
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "\u201d": "\u201d"}


def _closes_quote(text: str, pos: int, complete: bool) -> bool | None:
    """Whether the quote character at `pos` ends the value rather than being part of it.

    It does when what follows is the end of the command or the next `key=` (after spaces or
    commas), so `endword="She said "bye" to me"` keeps its inner quotes. None when that cannot be
    known yet because the text received so far ends first; `complete` says nothing more will come.
    """
    undecided = True if complete else None
    pos += 1
    while pos < len(text) and (text[pos].isspace() or text[pos] == ","):
        pos += 1
    if pos >= len(text):
        return undecided
    if text[pos] in "/>":
        return True
    key = _KEY.match(text, pos)
    if key is None:
        return False
    pos = key.end()
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos >= len(text):
        return undecided
    return text[pos] == "="


def _find_end(text: str, start: int) -> int | None:
    """Index just past the `>` ending the markup that begins `text`, skipping quoted values.

    None while the end has not arrived (or cannot be decided yet).
    """
    quote: str | None = None
    last_significant = ""
    pos = start
    while pos < len(text):
        char = text[pos]
        if quote is not None:
            if char == quote:
                closes = _closes_quote(text, pos, complete=False)
                if closes is None:
                    return None
                if closes:
                    quote = None
                    last_significant = char
        elif char in _QUOTES and last_significant == "=":
            quote = _QUOTES[char]
        elif char == ">":
            return pos + 1
        if quote is None and not char.isspace():
            last_significant = char
        pos += 1
    return None


# ---------------------------------------------------------------- parsing

_NAME = re.compile(r"</?(imsagent_[A-Za-z0-9_]*)", re.IGNORECASE)
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NEXT_ATTRIBUTE = re.compile(r"[\s,]+[A-Za-z_][A-Za-z0-9_-]*\s*=")


class _BadAttributes(ValueError):
    pass


def parse_attributes(area: str) -> dict[str, str]:
    """Read `key=value` pairs separated by spaces and/or commas; keys are lower-cased.

    Raises ValueError for anything that is not an attribute (a bare word, a missing `=`).
    """
    attributes: dict[str, str] = {}
    pos = 0
    length = len(area)
    while True:
        while pos < length and (area[pos].isspace() or area[pos] == ","):
            pos += 1
        if pos >= length:
            return attributes
        key_match = _KEY.match(area, pos)
        if key_match is None:
            raise _BadAttributes(f"unexpected {area[pos : pos + 20]!r}")
        key = key_match.group().lower()
        pos = key_match.end()
        while pos < length and area[pos].isspace():
            pos += 1
        if pos >= length or area[pos] != "=":
            raise _BadAttributes(f"attribute {key!r} has no value")
        pos += 1
        while pos < length and area[pos].isspace():
            pos += 1
        if pos < length and area[pos] in _QUOTES:
            closing = _QUOTES[area[pos]]
            end = pos + 1
            while True:
                end = area.find(closing, end)
                if end < 0:
                    raise _BadAttributes(f"value of {key!r} has no closing quote")
                if _closes_quote(area, end, complete=True):
                    break
                end += 1
            value = area[pos + 1 : end]
            pos = end + 1
        else:
            # Unquoted: up to the next `key=` (so `endword=Goodbye now` keeps its space) or the end.
            next_attribute = _NEXT_ATTRIBUTE.search(area, pos)
            end = next_attribute.start() if next_attribute else length
            value = area[pos:end].strip().rstrip(",").strip()
            pos = end
        attributes[key] = html.unescape(value)


def parse_command(raw: str) -> Piece | None:
    """One complete piece of markup → a command, a BadCommand, or None for a closing tag."""
    name_match = _NAME.match(raw)
    if name_match is None:
        return BadCommand(raw, "not an imsagent command")
    if raw.startswith("</"):
        return None
    name = name_match.group(1).lower()
    body = raw[name_match.end() :]
    if body and body[0] not in _AFTER_NAME:
        return BadCommand(raw, f"unknown command {name + body.split()[0]!r}")
    area = body[:-1] if body.endswith(">") else body
    area = area.rstrip()
    if area.endswith("/"):
        area = area[:-1]
    try:
        attributes = parse_attributes(area)
    except ValueError as exc:
        return BadCommand(raw, f"cannot read the attributes of {name}: {exc}")
    if name == "imsagent_hangup":
        return HangupCommand(endword=attributes.get("endword", ""), raw=raw)
    if name == "imsagent_transfer_call":
        callee = attributes.get("callee", "")
        if not callee:
            return BadCommand(raw, "imsagent_transfer_call without a callee")
        return TransferCommand(
            caller=attributes.get("caller", ""),
            callee=callee,
            msg=attributes.get("msg", ""),
            err_msg=attributes.get("err_msg", ""),
            raw=raw,
        )
    return BadCommand(raw, f"unknown command {name!r}")


# ---------------------------------------------------------------- the streaming filter


class CommandFilter:
    """Split streamed model text into speech and commands. Feed text as it arrives; flush at the end.

    With `enabled=False` (the document's `params.text_commands: false`) text passes unchanged.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._held = ""

    @property
    def holding(self) -> str:
        """Text held back because it could still become a command."""
        return self._held

    def feed(self, text: str) -> list[Piece]:
        if not self.enabled:
            return [Speech(text)] if text else []
        self._held += text
        return self._drain(final=False)

    def flush(self) -> list[Piece]:
        """End of the reply: what is still held is spoken, or reported if it was a command."""
        if not self.enabled:
            return []
        return self._drain(final=True)

    def _drain(self, final: bool) -> list[Piece]:
        pieces: list[Piece] = []
        speech: list[str] = []

        def say_pending() -> None:
            text = "".join(speech)
            if text:
                pieces.append(Speech(text))
            speech.clear()

        buffer = self._held
        pos = 0
        while True:
            lt = buffer.find("<", pos)
            if lt < 0:
                speech.append(buffer[pos:])
                pos = len(buffer)
                break
            speech.append(buffer[pos:lt])
            status, end = self._scan(buffer, lt)
            if status == "text":
                speech.append("<")
                pos = lt + 1
                continue
            if status == "partial":
                if not final:
                    pos = lt
                    break
                say_pending()
                rest = buffer[lt:]
                if rest.lower().startswith((_OPEN, _CLOSE)):
                    pieces.append(BadCommand(rest, "the command was never closed"))
                elif len(rest) >= len("<ims"):
                    pieces.append(BadCommand(rest, "the reply ended inside a command"))
                else:
                    speech.append(rest)
                pos = len(buffer)
                break
            # A whole piece of markup.
            say_pending()
            raw = buffer[lt:end]
            if status == "overlong":
                pieces.append(BadCommand(raw, f"no closing '>' within {MAX_COMMAND_LENGTH} characters"))
            else:
                piece = parse_command(raw)
                if piece is not None:
                    pieces.append(piece)
            pos = end
        say_pending()
        self._held = buffer[pos:]
        return pieces

    @staticmethod
    def _scan(buffer: str, lt: int) -> tuple[str, int]:
        """Classify the markup candidate at `lt`: text, partial, complete or overlong (+ its end)."""
        head = buffer[lt : lt + len(_CLOSE)].lower()
        prefix = next((p for p in (_OPEN, _CLOSE) if head.startswith(p)), None)
        if prefix is None:
            if any(p.startswith(head) for p in (_OPEN, _CLOSE)):
                return "partial", len(buffer)
            return "text", lt + 1
        end = _find_end(buffer, lt + len(prefix))
        # Judged the same whether the end has arrived or not, so chunking never changes the result.
        if (end if end is not None else len(buffer)) - lt > MAX_COMMAND_LENGTH:
            return "overlong", lt + MAX_COMMAND_LENGTH
        if end is None:
            return "partial", len(buffer)
        return "complete", end


def spoken_text(reply: str) -> str:
    """What a caller hears of a model reply: its speech and a hang-up's endword, never the markup
    (for transcripts shown to people; the raw reply stays in the timeline)."""
    filtering = CommandFilter(enabled=True)
    parts: list[str] = []
    for piece in [*filtering.feed(reply), *filtering.flush()]:
        if isinstance(piece, Speech):
            parts.append(piece.text)
        elif isinstance(piece, HangupCommand) and piece.endword:
            parts.append(" " + piece.endword)
    return " ".join("".join(parts).split())
