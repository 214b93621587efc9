"""Refuse webhooks to private, loopback and other internal addresses (SSRF guard).

Only what the URL itself says is checked: literal IP addresses (including the legacy IPv4 forms a
resolver would accept, such as `127.1` or `2130706433`) and `localhost` names. Host names are never
resolved here — resolving would cost a DNS round trip per call and still not stop DNS rebinding; a
deployment that must stop names pointing inside should route webhooks through an egress proxy or
firewall. `params.swaig_allow_private_urls: true` turns the guard off, and the host that served the
agent document is always allowed.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _literal_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # Legacy IPv4 spellings (`127.1`, `0x7f.0.0.1`, `2130706433`) that inet_aton — and so the
    # resolver — accepts; no DNS lookup is made.
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and any(c.isdigit() for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _hostname(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and "]" in host:
        return host[1 : host.index("]")]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def refusal(url: str, *, allow_private: bool = False, document_host: str | None = None) -> str | None:
    """Why `url` may not be requested, or None if it may."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        return f"malformed URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"unsupported URL scheme {parts.scheme!r}"
    if not host:
        return "URL has no host"
    host = host.lower().rstrip(".")
    if document_host is not None and host == _hostname(document_host):
        return None
    if allow_private:
        return None
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return f"{host} is a loopback name (set params.swaig_allow_private_urls to allow it)"
    address = _literal_ip(host)
    if address is not None and _internal(address):
        return f"{host} is a private or loopback address (set params.swaig_allow_private_urls to allow it)"
    return None
