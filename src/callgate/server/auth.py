"""The admin token: every `/api/*` request and every dashboard page needs it (DESIGN §8).

`CALLGATE_ADMIN_TOKEN` sets it. Unset, a token is generated on first start, kept in a file only the
user can read (`CALLGATE_ADMIN_TOKEN_FILE`, else `$XDG_DATA_HOME/callgate/admin-token`, else
`~/.local/share/callgate/admin-token`) so it survives restarts, and printed once. A request proves
it with `Authorization: Bearer TOKEN`, or with the dashboard's session cookie, which holds an HMAC
of the token (never the token itself). Every comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import HTTPConnection

SESSION_COOKIE = "callgate_session"


@dataclass(frozen=True)
class AdminToken:
    value: str
    source: str  # "environment", "file <path>" or "generated <path>"

    def matches(self, offered: str | None) -> bool:
        if not offered:
            return False
        return hmac.compare_digest(offered.encode(), self.value.encode())

    def session_value(self) -> str:
        """What the dashboard's cookie holds: a keyed hash of the token, useless anywhere else."""
        return hmac.new(self.value.encode(), b"callgate dashboard session", hashlib.sha256).hexdigest()

    def allows(self, connection: HTTPConnection) -> bool:
        """A bearer token or the dashboard's session cookie."""
        scheme, _, offered = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.matches(offered.strip()):
            return True
        cookie = connection.cookies.get(SESSION_COOKIE) or ""
        return bool(cookie) and hmac.compare_digest(cookie.encode(), self.session_value().encode())


def token_file(env: Mapping[str, str]) -> Path:
    if env.get("CALLGATE_ADMIN_TOKEN_FILE"):
        return Path(env["CALLGATE_ADMIN_TOKEN_FILE"])
    data_home = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", str(Path.home()))) / ".local" / "share")
    return Path(data_home) / "callgate" / "admin-token"


def load_admin_token(env: Mapping[str, str]) -> AdminToken:
    """The token from the environment, else from its file, else a new one written to that file."""
    if env.get("CALLGATE_ADMIN_TOKEN"):
        return AdminToken(env["CALLGATE_ADMIN_TOKEN"], "environment")
    path = token_file(env)
    try:
        stored = path.read_text().strip()
    except FileNotFoundError:
        stored = ""
    if stored:
        return AdminToken(stored, f"file {path}")
    value = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created readable by the user alone; O_EXCL: two servers starting at once keep one token.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return AdminToken(path.read_text().strip(), f"file {path}")
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return AdminToken(value, f"generated {path}")
