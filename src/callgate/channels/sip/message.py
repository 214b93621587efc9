"""SIP messages (RFC 3261 §7): parsing what arrives on the wire, building and serialising what we send.

Only what a user agent needs: start line, headers (compact forms expanded, folded lines joined,
order kept), body by Content-Length. Anything we cannot make sense of raises `SipParseError`, which
the endpoint answers with 400 when the message still tells it where to send one.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

SIP_VERSION = "SIP/2.0"

_COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "f": "From",
    "t": "To",
    "v": "Via",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "e": "Content-Encoding",
    "s": "Subject",
    "r": "Refer-To",
    "o": "Event",
    "b": "Referred-By",
    "u": "Allow-Events",
}
_CANONICAL = {
    name.lower(): name
    for name in (
        "Call-ID",
        "CSeq",
        "Via",
        "From",
        "To",
        "Contact",
        "Max-Forwards",
        "Content-Length",
        "Content-Type",
        "Record-Route",
        "Route",
        "Allow",
        "Supported",
        "User-Agent",
        "Server",
        "Event",
        "Subscription-State",
        "Refer-To",
        "Referred-By",
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "Authorization",
        "Proxy-Authorization",
        "Reason",
        "Allow-Events",
    )
}
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")
_METHOD = re.compile(r"^[A-Za-z]+$")
_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


class SipParseError(ValueError):
    """The bytes are not a SIP message we can act on (answered 400 when possible)."""


def canonical(name: str) -> str:
    lowered = name.strip().lower()
    if lowered in _COMPACT:
        return _COMPACT[lowered]
    return _CANONICAL.get(lowered, name.strip())


def new_tag() -> str:
    return "".join(secrets.choice(_TOKEN_CHARS) for _ in range(10))


def new_branch() -> str:
    return "z9hG4bK" + "".join(secrets.choice(_TOKEN_CHARS) for _ in range(16))


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(12)}@{host}"


@dataclass
class SipMessage:
    """A request (method + uri) or a response (status + reason), with ordered headers and a body."""

    method: str = ""
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return bool(self.method)

    # ------------------------------------------------------------ headers

    def get(self, name: str, default: str = "") -> str:
        wanted = canonical(name).lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of `name`, comma-separated lists split (Via, Route, Record-Route, Contact)."""
        wanted = canonical(name).lower()
        values: list[str] = []
        for key, value in self.headers:
            if key.lower() == wanted:
                values.extend(split_list(value))
        return values

    def set(self, name: str, value: str) -> None:
        """Replace every `name` header with one value (appended if absent)."""
        wanted = canonical(name)
        kept = [(k, v) for k, v in self.headers if k.lower() != wanted.lower()]
        kept.append((wanted, value))
        self.headers = kept

    def add(self, name: str, value: str) -> None:
        self.headers.append((canonical(name), value))

    def remove(self, name: str) -> None:
        wanted = canonical(name).lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != wanted]

    # ------------------------------------------------------------ commonly needed parts

    @property
    def call_id(self) -> str:
        return self.get("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        return parse_cseq(self.get("CSeq"))

    @property
    def branch(self) -> str:
        vias = self.get_all("Via")
        return header_params(vias[0]).get("branch", "") if vias else ""

    @property
    def from_tag(self) -> str:
        return NameAddr.parse(self.get("From")).params.get("tag", "")

    @property
    def to_tag(self) -> str:
        return NameAddr.parse(self.get("To")).params.get("tag", "")

    # ------------------------------------------------------------ wire form

    def encode(self) -> bytes:
        if self.is_request:
            start = f"{self.method} {self.uri} {SIP_VERSION}"
        else:
            start = f"{SIP_VERSION} {self.status} {self.reason}"
        lines = [start]
        lines.extend(f"{k}: {v}" for k, v in self.headers if k.lower() != "content-length")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body

    def summary(self) -> str:
        return f"{self.method} {self.uri}" if self.is_request else f"{self.status} {self.reason}"


def parse(data: bytes, *, strict: bool = True) -> SipMessage:
    """A SIP message from one UDP datagram, or SipParseError.

    `strict=False` is for answering garbage: bad header lines are skipped and nothing is required,
    so a 400 can still carry whatever Via/From/To/Call-ID/CSeq the sender wrote."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SipParseError("headers are not UTF-8") from error
    raw_lines = text.replace("\r\n", "\n").split("\n")
    while raw_lines and not raw_lines[0].strip():
        raw_lines.pop(0)  # keep-alive CRLFs before a message
    if not raw_lines:
        raise SipParseError("empty message")
    message = _start_line(raw_lines[0], strict)
    lines: list[str] = []
    for line in raw_lines[1:]:
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()  # folded header
        elif line:
            lines.append(line)
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            if not strict:
                continue
            raise SipParseError(f"bad header line {line[:60]!r}")
        message.headers.append((canonical(name), value.strip()))
    if not strict:
        message.body = body
        return message
    length_text = message.get("Content-Length")
    if length_text:
        if not length_text.isdigit():
            raise SipParseError(f"bad Content-Length {length_text!r}")
        length = int(length_text)
        if length > len(body):
            raise SipParseError("body shorter than Content-Length")
        body = body[:length]
    message.body = body
    missing = [name for name in _REQUIRED if not message.get(name)]
    if missing:
        raise SipParseError("missing " + ", ".join(missing))
    _, method = parse_cseq(message.get("CSeq"))
    if message.is_request and method != message.method:
        raise SipParseError("CSeq method does not match the request")
    return message


def _start_line(line: str, strict: bool = True) -> SipMessage:
    parts = line.strip().split(" ", 2)
    if not strict and parts[0] != SIP_VERSION:
        return SipMessage(method=parts[0].upper() or "UNKNOWN", uri=parts[1] if len(parts) > 1 else "")
    if parts[0] == SIP_VERSION:
        if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) != 3:
            raise SipParseError(f"bad status line {line[:60]!r}")
        return SipMessage(status=int(parts[1]), reason=parts[2] if len(parts) > 2 else "")
    if len(parts) != 3 or parts[2] != SIP_VERSION or not _METHOD.match(parts[0]):
        raise SipParseError(f"bad request line {line[:60]!r}")
    if ":" not in parts[1]:
        raise SipParseError(f"bad Request-URI {parts[1][:60]!r}")
    return SipMessage(method=parts[0].upper(), uri=parts[1])


def parse_cseq(value: str) -> tuple[int, str]:
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit() or not _METHOD.match(parts[1]):
        raise SipParseError(f"bad CSeq {value!r}")
    return int(parts[0]), parts[1].upper()


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas inside quotes and <...>."""
    items: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    for char in value:
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "<":
            depth += 1
        elif not quoted and char == ">":
            depth = max(0, depth - 1)
        if char == "," and not quoted and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if "".join(current).strip():
        items.append("".join(current).strip())
    return items


def header_params(value: str) -> dict[str, str]:
    """`;name=value` parameters of a header value (after any <uri>), names lower-cased."""
    tail = value.rsplit(">", 1)[1] if ">" in value else value
    params: dict[str, str] = {}
    for item in tail.split(";")[1:]:
        name, _, param = item.partition("=")
        if name.strip():
            params[name.strip().lower()] = param.strip().strip('"')
    return params


@dataclass
class NameAddr:
    """`"Display" <sip:user@host>;tag=x` (From, To, Contact, Refer-To, Route)."""

    uri: str
    display: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> NameAddr:
        value = value.strip()
        if "<" in value:
            display, _, rest = value.partition("<")
            uri, _, tail = rest.partition(">")
            return cls(uri=uri.strip(), display=display.strip().strip('"'), params=header_params(">" + tail))
        uri, _, tail = value.partition(";")
        return cls(uri=uri.strip(), params=header_params(";" + tail if tail else ""))

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        return f"{display}<{self.uri}>{params}"


@dataclass(frozen=True)
class SipUri:
    """The parts of a sip: URI we route by."""

    user: str
    host: str
    port: int | None
    password: str = ""
    scheme: str = "sip"

    @classmethod
    def parse(cls, uri: str) -> SipUri:
        text = uri.strip().strip("<>")
        scheme, colon, rest = text.partition(":")
        if not colon or scheme.lower() not in ("sip", "sips", "tel"):
            raise SipParseError(f"not a SIP URI: {uri!r}")
        rest = rest.split(";", 1)[0].split("?", 1)[0]
        userinfo, at, hostport = rest.rpartition("@")
        user, _, password = userinfo.partition(":") if at else ("", "", "")
        host, port = split_hostport(hostport)
        return cls(user=user, host=host, port=port, password=password, scheme=scheme.lower())


def split_hostport(hostport: str) -> tuple[str, int | None]:
    if hostport.startswith("["):  # IPv6 literal
        host, _, rest = hostport[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, colon, port = hostport.partition(":")
    if colon and port.isdigit():
        return host, int(port)
    return host, None


def uri_user(value: str) -> str:
    """The user part of the URI in a From/To/Contact value ("" if none)."""
    try:
        return SipUri.parse(NameAddr.parse(value).uri).user
    except SipParseError:
        return ""


def response_to(request: SipMessage, status: int, reason: str, *, to_tag: str = "") -> SipMessage:
    """A response carrying the request's Via, From, To (+ our tag), Call-ID and CSeq (§8.2.6)."""
    response = SipMessage(status=status, reason=reason)
    for name, value in request.headers:
        if name in ("Via", "From", "Call-ID", "CSeq", "Record-Route") or (name == "To"):
            if name == "To" and to_tag and "tag=" not in value and status != 100:
                value = f"{value};tag={to_tag}"
            response.headers.append((name, value))
    return response


REASONS = {
    100: "Trying",
    180: "Ringing",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    503: "Service Unavailable",
    603: "Decline",
}
