"""The destination policy: the toll-fraud guard every transfer passes before anything is said.

An LLM that can dial any number is a toll-fraud machine, so a transfer goes only where the document
allows (DESIGN §4):

- `params.transfer_allow` set: only destinations matching one of its entries (exact, or fnmatch
  globs such as `+1555*` or `sip:*@pbx.example.com`) are allowed — whatever their origin, the
  document's own literals included. An empty list allows nothing.
- otherwise: destinations written literally in the document are allowed (see `collect_literals`),
  and so is anything the customer's own servers returned (origin "server": a SWAIG webhook answer,
  a data_map webhook answer, the Vapi destination server). A destination the model made up (origin
  "model", or a document template filled from model arguments) is refused.

Comparisons use `normalise`: numbers lose spaces, dashes, dots and parentheses (a leading `+` is
kept, `tel:` is dropped); SIP URIs get a `sip:` scheme if written as `user@host` and are compared
case-insensitively. Patterns are normalised the same way, so `+1 (555) *` means `+1555*`.

Caller ID: empty (the caller's own number is used), the caller's own number, a number the document
names, or — for destinations a customer server returned — the caller ID that server gave. Anything
else is refused with `caller ID not allowed`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

from callgate.swml.models import AI, Document, Function
from callgate.swml.pom import render_pom
from callgate.telephony.base import destination_key

Origin = Literal["document", "server", "model"]

DESTINATION_REFUSED = "destination not allowed"
CALLER_ID_REFUSED = "caller ID not allowed"

# A phone number inside free text: optional +, digit groups joined by at most one separator each
# (space, dot, dash, parentheses), so "call 555 0100 - 2 options" does not run into the next number.
# Each further group starts with a separator or "(" — digit runs never split two ways (no ReDoS).
_NUMBER_IN_TEXT = re.compile(r"(?<![\w+])\+?\(?\d+\)?(?:[ \t.-]\(?\d+\)?|\(\d+\)?)*(?![\w])")
_SIP_IN_TEXT = re.compile(r"\bsips?:[^\s\"'<>,]+", re.IGNORECASE)
_USER_AT_HOST = re.compile(r"(?<![\w.:/@-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\b")
_VERBS = ("connect", "sip_refer", "transfer")
_DESTINATION_KEYS = ("to", "to_uri", "dest", "number", "sipUri", "sip_uri")
_CALLER_ID_KEYS = ("from", "callerId", "caller_id")


def is_sip(text: str) -> bool:
    lowered = text.strip().lower()
    return lowered.startswith(("sip:", "sips:")) or "@" in lowered


def normalise(destination: str) -> str:
    """The form destinations are compared in (numbers and SIP URIs; see the module docstring):
    `telephony.base.destination_key`, with `tel:` dropped and SIP URIs written `sip:…`."""
    text = destination.strip()
    if text.lower().startswith("tel:"):
        text = text[4:]
    key = destination_key(text)
    return f"sip:{key}" if is_sip(text) and not key.startswith("sips:") else key


def _templated(text: str) -> bool:
    # `${…}` is filled at run time (possibly from the model's arguments): not a literal.
    return "${" in text or "%{" in text


def numbers_in_text(text: str) -> list[str]:
    """Phone numbers and SIP URIs written in free text (prompt, descriptions), normalised."""
    found: list[str] = []
    for match in _NUMBER_IN_TEXT.finditer(text):
        value = normalise(match.group(0))
        if sum(c.isdigit() for c in value) >= 3:
            found.append(value)
    for pattern in (_SIP_IN_TEXT, _USER_AT_HOST):
        for match in pattern.finditer(text):
            found.append(normalise(match.group(0).rstrip(".;:)")))
    return found


@dataclass
class Literals:
    """Destinations and caller IDs the document names, normalised."""

    destinations: set[str] = field(default_factory=set)
    caller_ids: set[str] = field(default_factory=set)
    assistants: set[str] = field(default_factory=set)

    def add_destination(self, value: Any) -> None:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.strip() and not _templated(value):
            self.destinations.add(normalise(value))

    def add_caller_id(self, value: Any) -> None:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.strip() and not _templated(value):
            self.caller_ids.add(normalise(value))

    def add_text(self, text: str) -> None:
        for value in numbers_in_text(text):
            self.destinations.add(value)
            self.caller_ids.add(value)

    def update(self, other: Literals) -> None:
        self.destinations |= other.destinations
        self.caller_ids |= other.caller_ids
        self.assistants |= other.assistants


def _strings(tree: Any) -> Iterator[str]:
    if isinstance(tree, str):
        yield tree
    elif isinstance(tree, dict):
        for value in tree.values():
            yield from _strings(value)
    elif isinstance(tree, list | tuple):
        for value in tree:
            yield from _strings(value)


def _verbs(tree: Any, literals: Literals) -> None:
    """connect / sip_refer / transfer verbs anywhere in a raw tree (sections, SWAIG actions)."""
    if isinstance(tree, list):
        for item in tree:
            _verbs(item, literals)
        return
    if not isinstance(tree, dict):
        return
    for key, value in tree.items():
        if key in _VERBS:
            if isinstance(value, str):
                literals.add_destination(value)
            elif isinstance(value, dict):
                for name in _DESTINATION_KEYS:
                    literals.add_destination(value.get(name))
                for name in _CALLER_ID_KEYS:
                    literals.add_caller_id(value.get(name))
                for group in ("serial", "parallel", "serial_parallel"):
                    for device in _flatten(value.get(group)):
                        if isinstance(device, dict):
                            literals.add_destination(device.get("to"))
                            literals.add_caller_id(device.get("from"))
        _verbs(value, literals)


def _flatten(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    elif value is not None:
        yield value


def _function_literals(function: Function, literals: Literals) -> None:
    literals.add_text(function.description_text)
    config = function.transfer
    if config is not None:
        for entry in config.destinations or []:
            if isinstance(entry, dict):
                for name in _DESTINATION_KEYS:
                    literals.add_destination(entry.get(name))
                for name in _CALLER_ID_KEYS:
                    literals.add_caller_id(entry.get(name))
                if entry.get("type") == "assistant" and entry.get("assistantName"):
                    literals.assistants.add(str(entry["assistantName"]))
            else:
                literals.add_destination(entry)
        literals.add_caller_id(config.caller_id)
        literals.assistants |= set(config.assistants)
    # A meta_data table is the document's own directory (SignalWire's transfer example).
    for value in _strings(function.meta_data or {}):
        literals.add_destination(value)
        literals.add_caller_id(value)
        literals.add_text(value)
    if function.data_map is not None:
        raw = function.data_map.model_dump(mode="json", exclude_none=True)
        _verbs(raw, literals)
        for text in _strings(raw):
            if not _templated(text):
                literals.add_text(text)


def _ai_literals(ai: AI, literals: Literals) -> None:
    prompt = ai.prompt.text if ai.prompt.text is not None else render_pom(ai.prompt.pom or [])
    literals.add_text(prompt)
    for text in _strings(ai.prompt.contexts or {}):
        literals.add_text(text)
    for text in _strings(ai.global_data):
        literals.add_text(text)
    for function in ai.SWAIG.functions:
        _function_literals(function, literals)


def collect_literals(document: Document) -> Literals:
    """Every destination the document writes literally (collected once, at load).

    Looked at: the prompt (text, POM, contexts) and global_data as free text; connect / sip_refer /
    transfer verbs in every section and inside SWAIG data_map actions (their `from` as caller IDs);
    builtin transfer `destinations` (strings or objects) and `caller_id`; every string in a
    function's meta_data (a table of departments). Values holding `${…}` are templates, not
    literals: what they expand to is checked when the transfer happens.
    """
    literals = Literals()
    for verbs in document.sections.values():
        for verb in verbs:
            if isinstance(verb.args, AI):
                _ai_literals(verb.args, literals)
            else:
                _verbs({verb.name: verb.args}, literals)
    return literals


def matches_any(destination: str, patterns: Iterable[str]) -> bool:
    """`destination` equals or fnmatch-matches one of `patterns` (both normalised)."""
    value = normalise(destination)
    for pattern in patterns:
        wanted = normalise(pattern)
        if value == wanted or fnmatchcase(value, wanted):
            return True
    return False


@dataclass
class DestinationPolicy:
    """Decides whether a transfer may go to a destination, and with which caller ID."""

    literals: Literals = field(default_factory=Literals)
    allow: list[str] | None = None  # params.transfer_allow
    caller_number: str = ""  # the caller's own number, always fine as caller ID

    @classmethod
    def for_document(cls, document: Document, caller_number: str = "") -> DestinationPolicy:
        ai = document.find_ai()
        allow = (
            list(ai.params.transfer_allow)
            if ai is not None and ai.params.transfer_allow is not None
            else None
        )
        return cls(literals=collect_literals(document), allow=allow, caller_number=caller_number)

    def add_document(self, document: Document) -> None:
        """A hand-off to another agent document: its literals become allowed too."""
        self.literals.update(collect_literals(document))

    def destination_allowed(self, destination: str, origin: Origin) -> bool:
        if not destination.strip():
            return False
        if destination.startswith("assistant:"):
            # Another agent document: only those the document names under `transfer.assistants`.
            return destination.split(":", 1)[1] in self.literals.assistants
        if self.allow is not None:
            return matches_any(destination, self.allow)
        return origin == "server" or normalise(destination) in self.literals.destinations

    def caller_id_allowed(self, caller_id: str | None, origin: Origin) -> bool:
        if caller_id is None or not caller_id.strip():
            return True
        value = normalise(caller_id)
        if origin == "server":
            return True
        if self.caller_number and value == normalise(self.caller_number):
            return True
        return value in self.literals.caller_ids

    def check(self, destination: str, origin: Origin, caller_id: str | None = None) -> str | None:
        """None if the transfer may go ahead, else the refusal code."""
        if not self.destination_allowed(destination, origin):
            return DESTINATION_REFUSED
        if not self.caller_id_allowed(caller_id, origin):
            return CALLER_ID_REFUSED
        return None
