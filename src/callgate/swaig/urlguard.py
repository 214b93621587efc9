"""Refuse requests to private, loopback and other internal addresses (the SSRF guard).

Every outbound request an agent document controls (SWAIG and data_map webhooks, includes,
post_prompt_url, sms_webhook_url, transfer.destination_url, assistant documents by URL) is checked
twice:

1. on the URL alone (`Guard.url_refusal`): the host exactly as the HTTP client will connect to it
   (`httpx.URL(...).raw_host`: IDNA, the Unicode dots U+3002/U+FF0E/U+FF61 folded to `.`), trailing
   dots dropped, IP literals in every spelling the resolver accepts (`127.1`, `0x7f.1`,
   `2130706433`, octal), `localhost` names. No DNS: this is all a scenario's stubbed request gets.
2. when a connection is really made (`callgate.swaig.guarded_transport`): the name is resolved,
   every address it resolves to must pass `address_refusal`, and the connection goes to an address
   that was checked, so a second DNS answer (rebinding) cannot differ.

An address is refused when it is not globally routable — private, loopback, link-local, CGNAT
(100.64/10), unspecified, reserved, documentation, multicast — or embeds such an IPv4 address
(IPv4-mapped, IPv4-compatible, IPv4-translated ::ffff:0:0:0/96, 6to4 2002::/16, NAT64
64:ff9b::/96 and 64:ff9b:1::/48, Teredo).

Exemptions (DESIGN §4, §6): `params.swaig_allow_private_urls: true`, the host that served the
agent document, and a scenario's passthrough URLs (`Guard.exempt`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Where a request carries its guard for the transport (httpx request extensions).
GUARD_EXTENSION = "callgate.guard"

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_ALLOW_HINT = "set params.swaig_allow_private_urls to allow it"
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # SIIT (RFC 2765): a translator's target


def connect_host(url: str) -> str:
    """The host the HTTP client connects to for `url`, lower-cased, without trailing dots.
    Raises ValueError for a URL the client would not accept either."""
    try:
        raw = httpx.URL(url).raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeDecodeError, TypeError) as exc:
        raise ValueError(parse_problem(exc)) from exc
    return canonical_host(raw)


def parse_problem(exc: BaseException) -> str:
    """What is wrong with a URL the client cannot parse, without the part it quotes: httpx says
    `Invalid port: 'pa55word'` for `http://user:pa55word?x@host/`, a password in the wrong place."""
    return str(exc).split(":", 1)[0] or type(exc).__name__


def canonical_host(host: str) -> str:
    """A host name or IP literal as compared and resolved: IDNA-encoded as httpx does (Unicode
    dots folded), lower-case, without brackets, a trailing dot or a percent-encoded IPv6 zone."""
    text = host.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    if ":" not in text and not text.isascii():
        with contextlib.suppress(httpx.InvalidURL, UnicodeDecodeError):
            text = httpx.URL(f"http://{text}/").raw_host.decode("ascii")
    text = text.lower().rstrip(".")
    if ":" in text:
        text = unquote(text)  # `fe80::1%25eth0` as written in a URL
    return text


def literal_address(host: str) -> IPAddress | None:
    """The IP address `host` spells, in any form the resolver accepts without DNS, or None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # Legacy IPv4 spellings (`127.1`, `0x7f.0.0.1`, `2130706433`, `0177.0.0.1`) that inet_aton —
    # and so getaddrinfo, and so the HTTP client — accepts; no DNS lookup is made.
    if host and all(c in "0123456789abcdefx." for c in host) and any(c.isdigit() for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _embedded(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, compatible, 6to4, NAT64, Teredo)."""
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _IPV4_TRANSLATED or any(address in network for network in _NAT64):
        found.append(low32)
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        found.append(low32)
    return found


def _v4_problem(address: ipaddress.IPv4Address) -> bool:
    return not address.is_global or address.is_multicast or address.is_reserved


def address_refusal(address: IPAddress) -> str | None:
    """Why a connection to `address` is refused (it is, or embeds, an internal address), or None."""
    if isinstance(address, ipaddress.IPv4Address):
        if _v4_problem(address):
            return f"{address} is a private or loopback address (not publicly routable)"
        return None
    if address.scope_id:
        return f"{address} is a link-local address"
    embedded = _embedded(address)
    for inner in embedded:
        if _v4_problem(inner):
            return f"{address} embeds {inner}, a private or loopback address (not publicly routable)"
    if (
        address.ipv4_mapped is not None
        or address in _IPV4_TRANSLATED
        or any(address in network for network in _NAT64)
    ):
        return None  # a translation of the (public) IPv4 address just checked
    if not address.is_global or address.is_multicast or address.is_site_local or address in _IPV4_COMPATIBLE:
        return f"{address} is a private or loopback address (not publicly routable)"
    return None


def _host_refusal(host: str) -> str | None:
    if not host:
        return "URL has no host"
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return f"{host} is a loopback name"
    if "%" in host and ":" not in host:
        return f"{host!r} is not a valid host name"
    address = literal_address(host)
    if address is not None:
        return address_refusal(address)
    return None


@dataclass(frozen=True)
class Guard:
    """Which requests a document may make: everything public, plus its exemptions."""

    allow_private: bool = False  # params.swaig_allow_private_urls
    document_host: str | None = None  # the host that served the agent document
    exempt: Callable[[str], bool] | None = None  # a scenario's passthrough URLs

    def exempted(self, url: str) -> bool:
        """True when `url` is not guarded at all (no check, no resolution, no pinning)."""
        if self.allow_private or (self.exempt is not None and self.exempt(url)):
            return True
        if self.document_host is None:
            return False
        try:
            return connect_host(url) == _document_host(self.document_host)
        except ValueError:
            return False

    def url_refusal(self, url: str) -> str | None:
        """Why `url` may not be requested, judged on the URL alone (no DNS), or None."""
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            return f"malformed URL ({exc})"
        if parts.scheme.lower() not in ("http", "https"):
            return f"unsupported URL scheme {parts.scheme!r}"
        try:
            host = connect_host(url)
        except ValueError as exc:
            return f"malformed URL ({exc})"
        if not host:
            return "URL has no host"
        if self.exempted(url):
            return None
        problem = _host_refusal(host)
        return f"{problem} ({_ALLOW_HINT})" if problem else None


def _document_host(host: str) -> str:
    """`document_host` may carry a port (`10.0.0.5:9000`, `[fd00::1]:8443`); only the host counts."""
    text = host.strip()
    if text.startswith("["):
        return canonical_host(text)
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return canonical_host(text)


def refusal(url: str, *, allow_private: bool = False, document_host: str | None = None) -> str | None:
    """Why `url` may not be requested (URL alone, no DNS), or None if it may."""
    return Guard(allow_private=allow_private, document_host=document_host).url_refusal(url)


def resolved_refusal(host: str, addresses: list[IPAddress]) -> str | None:
    """Why a connection to `host`, which resolved to `addresses`, is refused (any bad one), or None."""
    if not addresses:
        return f"{host} did not resolve to any address"
    for address in addresses:
        problem = address_refusal(address)
        if problem is not None:
            if str(address) == host:
                return f"{problem} ({_ALLOW_HINT})"
            return f"{host} resolves to a refused address: {problem} ({_ALLOW_HINT})"
    return None
