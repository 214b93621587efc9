"""HTTP Digest authentication for our outbound INVITEs (RFC 3261 §22, RFC 2617/7616 MD5, SHA-256)."""

from __future__ import annotations

import hashlib
import secrets

from callgate.channels.sip.message import split_list


def parse_challenge(value: str) -> dict[str, str]:
    """`Digest realm="x", nonce="y", qop="auth"` → {"realm": "x", ...} (names lower-cased)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    params: dict[str, str] = {}
    for item in split_list(rest):
        name, _, param = item.partition("=")
        params[name.strip().lower()] = param.strip().strip('"')
    return params


def authorization(
    challenge: dict[str, str], *, method: str, uri: str, username: str, password: str, nc: int = 1
) -> str:
    """The Authorization / Proxy-Authorization value answering `challenge`."""
    algorithm = challenge.get("algorithm", "MD5")
    digest = hashlib.sha256 if algorithm.upper().startswith("SHA-256") else hashlib.md5

    def h(text: str) -> str:
        return digest(text.encode("utf-8")).hexdigest()

    realm = challenge.get("realm", "")
    nonce = challenge.get("nonce", "")
    ha1 = h(f"{username}:{realm}:{password}")
    ha2 = h(f"{method}:{uri}")
    qops = [q.strip() for q in challenge.get("qop", "").split(",") if q.strip()]
    parts = [
        f'username="{username}"',
        f'realm="{realm}"',
        f'nonce="{nonce}"',
        f'uri="{uri}"',
        f"algorithm={algorithm}",
    ]
    if "auth" in qops:
        cnonce = secrets.token_hex(8)
        count = f"{nc:08x}"
        response = h(f"{ha1}:{nonce}:{count}:{cnonce}:auth:{ha2}")
        parts += [f'response="{response}"', "qop=auth", f"nc={count}", f'cnonce="{cnonce}"']
    else:
        parts.append(f'response="{h(f"{ha1}:{nonce}:{ha2}")}"')
    if "opaque" in challenge:
        parts.append(f'opaque="{challenge["opaque"]}"')
    return "Digest " + ", ".join(parts)
