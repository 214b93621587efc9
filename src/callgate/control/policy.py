"""The destination policy: the toll-fraud guard every transfer passes before anything is said.

An LLM that can dial any number is a toll-fraud machine, so a transfer goes only where the document
allows (DESIGN §4):

- `params.transfer_allow` set: only destinations matching one of its entries are allowed — whatever
  their origin, the document's own literals included. An empty list allows nothing. Numbers match
  digit by digit: a destination is a number only if it is digits (with a leading `+`) once spaces,
  dots, dashes and parentheses are gone, so `+1555*` never accepts `+1555,,,1900…` or `+1555w900…`
  (pause and DTMF characters make it no number at all). SIP URIs match by their parsed parts —
  scheme, user, host, port, parameters, headers — each against the same part of the pattern, so `*`
  never crosses `@`, `;`, `?` or `:` (`sip:*@pbx.example.com` does not accept
  `sip:a@evil.com;x=@pbx.example.com`).
- otherwise: destinations written literally in the document are allowed (see `collect_literals`),
  and so is anything the customer's own servers chose (origin "server": a SWAIG webhook answer, a
  data_map webhook answer, the Vapi destination server). A server destination counts as the
  server's only if it is one of the values the server returned that do not derive from the model's
  arguments (`callgate.swaig.provenance`): a lookup that echoes the model's number does not make it
  the server's. A destination the model made up (origin "model", or a document template filled
  from model arguments) is refused.

Globs apply only to well-formed destinations; one that is neither a number nor a well-formed SIP
URI (the seeds' `+1XXXXXXXXXX` placeholder) passes only by being exactly a literal, an allow entry
or a server's value. What is dialled is exactly the form that was checked (`dial_form`): numbers
without punctuation, SIP URIs re-assembled from their parsed parts.

Caller ID: empty (the caller's own number is used), the call's own numbers (caller and called),
a number the document names, or — for a destination a customer server chose — a value that server
returned (not one derived from the model's arguments). Anything else is refused with
`caller ID not allowed`.

Free text (the prompt, descriptions, global_data) names a destination only with a phone number
(E.164, or national with at least 7 digits — not a price, a date or a street number) or a
`tel:`/`sip:` URI.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal
from urllib.parse import unquote

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
_PHONE_DIGITS = (7, 15)  # national numbers have at least 7 digits; E.164 at most 15
_CURRENCY = "$€£¥₹"
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
_PRICE = re.compile(r"^[^.]*\d\.\d{1,2}$")
_VERBS = ("connect", "sip_refer", "transfer")
_DESTINATION_KEYS = ("to", "to_uri", "dest", "number", "sipUri", "sip_uri")
_CALLER_ID_KEYS = ("from", "callerId", "caller_id")

_NUMBER_NOISE = re.compile(r"[\s().-]")
_NUMBER = re.compile(r"\+?[0-9]+")
_NUMBER_PATTERN = re.compile(r"\+?[0-9*?\[\]!-]+")

# SIP URI parts (RFC 3261, narrowed to what a transfer needs). The user part has no `:` (no
# passwords), `;`, `?`, `@` or `/`; parameters and headers have no `@` or `;` inside a value.
_USER = r"[A-Za-z0-9\-_.!~*'()%&=+$,]+"
_TOKEN = r"[A-Za-z0-9\-_.!~*'%+]+"
_PARAM = rf";{_TOKEN}(?:={_TOKEN})?"
_HEADER = rf"{_TOKEN}=[A-Za-z0-9\-_.!~*'%+$]*"


def _sip_regex(host: str, port: str) -> re.Pattern[str]:
    return re.compile(
        rf"(?P<scheme>sips?):(?:(?P<user>{_USER})@)?(?P<host>{host})(?::(?P<port>{port}))?"
        rf"(?P<params>(?:{_PARAM})*)(?:\?(?P<headers>{_HEADER}(?:&{_HEADER})*))?",
        re.IGNORECASE,
    )


# What a glob never matches inside a SIP URI part, even percent-escaped.
_SEPARATORS = frozenset('@:;?/<>,"\\ ')

_SIP = _sip_regex(r"[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]", r"[0-9]{1,5}")
_SIP_PATTERN = _sip_regex(r"[A-Za-z0-9.\-*]+|\[[0-9A-Fa-f:.]+\]", r"[0-9*]{1,5}")


@dataclass(frozen=True)
class SipUri:
    """A SIP URI in parts: scheme and host lower-case, the rest as written."""

    scheme: str
    user: str | None
    host: str
    port: str | None
    params: tuple[str, ...]
    headers: tuple[str, ...]

    @property
    def text(self) -> str:
        user = f"{self.user}@" if self.user is not None else ""
        port = f":{self.port}" if self.port is not None else ""
        headers = "?" + "&".join(self.headers) if self.headers else ""
        return f"{self.scheme}:{user}{self.host}{port}{''.join(';' + p for p in self.params)}{headers}"

    def matches(self, pattern: SipUri) -> bool:
        """Part by part: `*` in a part of the pattern matches within that part only."""

        def same(value: str | None, wanted: str | None) -> bool:
            if value is None or wanted is None:
                return value is None and wanted is None
            if value.lower() == wanted.lower():
                return True
            # A glob is matched against what the far end decodes: `%40` is an `@`, and `*` never
            # crosses a separator, escaped or not (`sip:a%40evil.com@pbx` is not `sip:*@pbx`).
            decoded = unquote(value)
            if any(c in _SEPARATORS or not c.isprintable() for c in decoded):
                return False
            return fnmatchcase(decoded.lower(), unquote(wanted).lower())

        return (
            self.scheme == pattern.scheme
            and same(self.user, pattern.user)
            and same(self.host, pattern.host)
            and same(self.port, pattern.port)
            and len(self.params) == len(pattern.params)
            and all(same(a, b) for a, b in zip(self.params, pattern.params, strict=True))
            and len(self.headers) == len(pattern.headers)
            and all(same(a, b) for a, b in zip(self.headers, pattern.headers, strict=True))
        )


def _parse_sip(text: str, regex: re.Pattern[str]) -> SipUri | None:
    body = text.strip()
    if not body.lower().startswith(("sip:", "sips:")):
        body = f"sip:{body}"
    match = regex.fullmatch(body)
    if match is None:
        return None
    params = tuple(p for p in (match.group("params") or "").split(";") if p)
    headers = tuple(h for h in (match.group("headers") or "").split("&") if h)
    return SipUri(
        scheme=match.group("scheme").lower(),
        user=match.group("user"),
        host=match.group("host").lower(),
        port=match.group("port"),
        params=params,
        headers=headers,
    )


def parse_sip(text: str) -> SipUri | None:
    """A SIP URI (`sip:`/`sips:`, or `user@host`) in parts, or None if it is not well-formed."""
    return _parse_sip(text, _SIP)


def canonical_number(text: str) -> str | None:
    """`+1 (555) 000-2222` / `tel:+15550002222` → `+15550002222`; None unless only digits remain
    (pause and DTMF characters such as `,;wWpP#*` make it no number)."""
    body = text.strip()
    if body.lower().startswith("tel:"):
        body = body[4:]
    body = _NUMBER_NOISE.sub("", body)
    return body if _NUMBER.fullmatch(body) else None


def is_sip(text: str) -> bool:
    lowered = text.strip().lower()
    return lowered.startswith(("sip:", "sips:")) or "@" in lowered


def canonical(destination: str) -> str | None:
    """The canonical form of a well-formed destination — a number without punctuation, a SIP URI
    re-assembled from its parts — or None. `assistant:<name>` is kept as it is."""
    text = destination.strip()
    if text.startswith("assistant:"):
        return text
    if is_sip(text):
        uri = parse_sip(text)
        return uri.text if uri is not None else None
    return canonical_number(text)


def dial_form(destination: str) -> str:
    """What is checked and dialled: the canonical form; a destination that is not well-formed (the
    seeds' `+1XXXXXXXXXX`) only ever passes by being exactly a literal or a server's value, and is
    dialled as compared (number punctuation dropped)."""
    form = canonical(destination)
    if form is not None:
        return form
    text = destination.strip()
    return text if is_sip(text) else destination_key(text)


def normalise(destination: str) -> str:
    """The form destinations are compared in: the dial form, SIP URIs lower-cased with `sip:`
    written out."""
    form = dial_form(destination)
    if form.lower().startswith("tel:"):
        form = form[4:]
    if is_sip(form):
        key = destination_key(form)
        return key if key.startswith("sips:") else f"sip:{key}"
    return form


def _templated(text: str) -> bool:
    # `${…}` is filled at run time (possibly from the model's arguments): not a literal.
    return "${" in text or "%{" in text


def _phone_shaped(raw: str, text: str, start: int) -> bool:
    digits = sum(c.isdigit() for c in raw)
    if not _PHONE_DIGITS[0] <= digits <= _PHONE_DIGITS[1]:
        return False
    before = text[max(0, start - 2) : start].strip()
    if before and before[-1] in _CURRENCY:
        return False
    return not (_DATE.fullmatch(raw) or _PRICE.match(raw))


def numbers_in_text(text: str) -> list[str]:
    """Phone numbers and `sip:` URIs written in free text (prompt, descriptions), normalised."""
    found: list[str] = []
    for match in _NUMBER_IN_TEXT.finditer(text):
        raw = match.group(0)
        number = canonical_number(raw)
        if number is not None and _phone_shaped(raw, text, match.start()):
            found.append(number)
    for match in _SIP_IN_TEXT.finditer(text):
        uri = parse_sip(match.group(0).rstrip(".;:)"))
        if uri is not None:
            found.append(uri.text.lower())
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


def _number_pattern(pattern: str) -> str | None:
    body = pattern.strip()
    if body.lower().startswith("tel:"):
        body = body[4:]
    body = _NUMBER_NOISE.sub("", body) if "[" not in body else re.sub(r"[\s().]", "", body)
    return body if _NUMBER_PATTERN.fullmatch(body) else None


def matches_any(destination: str, patterns: Iterable[str]) -> bool:
    """`destination` matches one of `patterns` (exactly, or as a glob): numbers digit by digit,
    SIP URIs part by part (see the module docstring)."""
    number = canonical_number(destination) if not is_sip(destination) else None
    uri = parse_sip(destination) if number is None and is_sip(destination) else None
    key = normalise(destination)
    for pattern in patterns:
        if key == normalise(pattern):
            return True  # exactly this destination (also one that is not well-formed)
        if number is not None:
            wanted = _number_pattern(pattern)
            if wanted is not None and fnmatchcase(number, wanted):
                return True
        elif uri is not None and is_sip(pattern):
            parsed = _parse_sip(pattern, _SIP_PATTERN)
            if parsed is not None and uri.matches(parsed):
                return True
    return False


@dataclass
class DestinationPolicy:
    """Decides whether a transfer may go to a destination, and with which caller ID."""

    literals: Literals = field(default_factory=Literals)
    allow: list[str] | None = None  # params.transfer_allow
    caller_number: str = ""  # the caller's own number, always fine as caller ID
    called_number: str = ""  # the number the caller dialled (the agent's own), fine as caller ID too

    @classmethod
    def for_document(
        cls, document: Document, caller_number: str = "", called_number: str = ""
    ) -> DestinationPolicy:
        ai = document.find_ai()
        allow = (
            list(ai.params.transfer_allow)
            if ai is not None and ai.params.transfer_allow is not None
            else None
        )
        return cls(
            literals=collect_literals(document),
            allow=allow,
            caller_number=caller_number,
            called_number=called_number,
        )

    def add_document(self, document: Document) -> None:
        """A hand-off to another agent document: its literals become allowed too."""
        self.literals.update(collect_literals(document))

    @staticmethod
    def dial_form(destination: str) -> str:
        """What to dial for a destination the policy let through: the form it checked."""
        return dial_form(destination)

    @staticmethod
    def effective_origin(destination: str, origin: Origin, server_values: Iterable[str] | None) -> Origin:
        """A "server" destination must be one of the values the server chose; one a template
        filled from the model's arguments, or the model's own value passed back, is the model's.
        `server_values` None: not tracked (the destination is taken as the server's)."""
        if origin != "server" or server_values is None:
            return origin
        wanted = normalise(destination)
        return "server" if any(normalise(v) == wanted for v in server_values) else "model"

    def destination_allowed(self, destination: str, origin: Origin) -> bool:
        if not destination.strip():
            return False
        if destination.startswith("assistant:"):
            # Another agent document: only those the document names under `transfer.assistants`.
            return destination.split(":", 1)[1] in self.literals.assistants
        if self.allow is not None:
            return matches_any(destination, self.allow)
        return origin == "server" or normalise(destination) in self.literals.destinations

    def caller_id_allowed(
        self, caller_id: str | None, origin: Origin, server_values: Iterable[str] | None = None
    ) -> bool:
        if caller_id is None or not caller_id.strip():
            return True
        value = normalise(caller_id)
        own = {normalise(n) for n in (self.caller_number, self.called_number) if n.strip()}
        if value in own or value in self.literals.caller_ids:
            return True
        return (
            origin == "server"
            and server_values is not None
            and any(normalise(v) == value for v in server_values)
        )

    @staticmethod
    def extension_allowed(extension: str | None, origin: Origin, server_values: Iterable[str] | None) -> bool:
        """The extension is dialled as DTMF once the transfer answers, and a PBX that dials out on
        `9` makes `9w1900…` a second destination: one with a phone number's worth of digits must be
        the document's own or a value the server chose (not one derived from the model's)."""
        if extension is None or sum(c.isdigit() for c in extension) < _PHONE_DIGITS[0]:
            return True
        if origin == "document":
            return True
        return origin == "server" and server_values is not None and extension.strip() in server_values

    def check(
        self,
        destination: str,
        origin: Origin,
        caller_id: str | None = None,
        server_values: Iterable[str] | None = None,
        extension: str | None = None,
    ) -> str | None:
        """None if the transfer may go ahead, else the refusal code."""
        values = None if server_values is None else frozenset(server_values)
        effective = self.effective_origin(destination, origin, values)
        if not self.destination_allowed(destination, effective):
            return DESTINATION_REFUSED
        if not self.extension_allowed(extension, origin, values):
            return DESTINATION_REFUSED
        if not self.caller_id_allowed(caller_id, effective, values):
            return CALLER_ID_REFUSED
        return None
