"""Credentials never leave in anything callgate shows, stores for display, or logs: one function.

`redact(text)` masks, wherever they appear in a text:

- the userinfo of a URL or DSN (`https://user:pass@host` → `https://user:***@host`, a lone
  `https://token@host` → `https://***@host`, `postgresql://…`), up to the last `@` of the
  authority, so an unencoded `@`, `/`, `?` or `#` in a password is covered too;
- `key=value` / `key: value` secrets (`password=`, `passwd`, `pwd`, `secret`, `token`, `api_key`,
  `access_token`, `sig`… in libpq DSNs, query strings, JSON-ish text);
- `Authorization` header values and `Basic …` / `Bearer …` credentials;
- `key=` / `auth=` query parameters, and OpenAI-style `sk-…` API keys written bare;
- the values of the process's secret environment variables (`register_env_secrets`), wherever
  they appear — an endpoint echoing the API key in an error message cannot print it.

`redact_data(value)` does the same through a JSON-like structure and masks the value of every key
that names a secret (`web_hook_auth_password`, `web_hook_auth_pass`, `post_prompt_auth_password`,
`destination_auth_password`, `Authorization`, `X-Api-Key`, `password`, `token`, …).
`install_log_redaction()` runs every log record's message through `redact`.

Everything that prints or records for people uses these: `calls show`, `calls export`, `calls
deliver`, store errors, the timeline, document fetch errors and the logs.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any

MASK = "***"

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]*")
_SECRET_WORDS = (
    r"password|passwd|pwd|pass|secret|client_secret|token|access_token|refresh_token|api[_-]?key|"
    r"apikey|auth_token|sig|signature|private_key|credentials?"
)
_KEY_VALUE = re.compile(
    rf"(?P<key>(?<![A-Za-z0-9])[\w.-]*?(?:{_SECRET_WORDS})|(?<=[?&])(?:key|auth))(?P<quote>[\"']?)"
    r"(?P<sep>\s*[=:]\s*)(?P<value>\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s&;,\"'}\]]+)",
    re.IGNORECASE,
)
_AUTH_HEADER = re.compile(
    r"(?P<key>(?:proxy-)?authorization)(?P<quote>[\"']?)(?P<sep>\s*[:=]\s*)(?P<value>\"[^\"]*\"|'[^']*'|[^\r\n,}]+)",
    re.IGNORECASE,
)
_SCHEME_CREDENTIAL = re.compile(r"\b(?P<scheme>Basic|Bearer|Digest)\s+[A-Za-z0-9._~+/=-]{6,}", re.IGNORECASE)
_QUICK = re.compile(r"@|[=:]|basic|bearer|digest|sk-", re.IGNORECASE)
# An OpenAI-style API key written bare (`sk-…`, `sk-proj-…`), e.g. echoed in a model server's error.
_API_KEY = re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")

# Keys whose value is a secret (compared lower-case with `-` as `_`), by their last word.
_SECRET_KEY = re.compile(
    r"(?:^|_)(?:password|passwd|pwd|pass|secret|token|access_token|api_key|apikey|authorization|"
    r"cookie|credentials?|private_key|signature)$"
)
_NOT_SECRET_KEYS = frozenset({"meta_data_token"})  # SignalWire's identifier of a meta_data store


# Secret values this process was given (`register_env_secrets`): masked wherever they appear,
# whatever surrounds them — a model server echoing the API key in its error message included.
_KNOWN_SECRETS: set[str] = set()
_SHORTEST_KNOWN = 6  # shorter values would mask ordinary words


def register_secret(value: str | None) -> None:
    """From now on `redact` masks `value` wherever it appears (values shorter than 6 are ignored)."""
    if value is not None and len(value.strip()) >= _SHORTEST_KNOWN:
        _KNOWN_SECRETS.add(value.strip())


# Environment variables holding a secret, by name (not `PWD`: the working directory is no secret).
_SECRET_ENV = re.compile(r"(?:API_?KEY|_KEY|TOKEN|SECRET|PASSWORD|PASSWD)$", re.IGNORECASE)


def register_env_secrets(env: Mapping[str, str] | None = None) -> None:
    """Every environment variable whose name says it holds a secret (`OPENAI_API_KEY`,
    `TWILIO_AUTH_TOKEN`, `CALLGATE_ADMIN_TOKEN`, `CALLGATE_SPEECH_API_KEY`, …) is masked."""
    for name, value in (os.environ if env is None else env).items():
        if _SECRET_ENV.search(name):
            register_secret(value)


def redact(text: str) -> str:
    """`text` with known secret values, URL userinfo, DSN passwords, auth headers and key=value
    secrets masked."""
    if not text:
        return text
    for secret in _KNOWN_SECRETS:
        if secret in text:
            text = text.replace(secret, MASK)
    if not _QUICK.search(text):
        return text
    text = _URL.sub(_mask_userinfo, text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group('key')}{m.group('quote')}{m.group('sep')}{MASK}", text)
    text = _SCHEME_CREDENTIAL.sub(lambda m: f"{m.group('scheme')} {MASK}", text)
    text = _API_KEY.sub(MASK, text)
    return _KEY_VALUE.sub(_mask_value, text)


def _mask_userinfo(match: re.Match[str]) -> str:
    url = match.group(0)
    scheme_end = url.index("://") + 3
    rest = url[scheme_end:]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" not in authority:
        # `user:p?ss@host` / `user:p#ss@host`: a password holding `?` or `#` unencoded still masks.
        head = rest.split("@", 1)[0]
        user = head.partition(":")[0]
        if "@" not in rest or ":" not in head or re.search(r"[/?#]", user):
            return url
        authority = head + "@"
    userinfo = authority.rpartition("@")[0]
    if ":" in userinfo and "@" in rest[len(authority) :]:
        # A password with an unencoded `/` (`user:p/ss@host`): mask through the last `@`.
        userinfo = rest.rpartition("@")[0]
    # `user:password@` keeps the user (it says which account); a lone `token@` is all secret.
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:{MASK}" if colon and user else MASK
    return f"{url[:scheme_end]}{shown}@{rest[len(userinfo) + 1 :]}"


def _mask_value(match: re.Match[str]) -> str:
    value = match.group("value")
    if value == MASK or value.strip("\"'") == MASK:
        return match.group(0)
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('key')}{match.group('quote')}{match.group('sep')}{quote}{MASK}{quote}"


def is_secret_key(key: str) -> bool:
    lowered = key.strip().lower().replace("-", "_")
    return lowered not in _NOT_SECRET_KEYS and bool(_SECRET_KEY.search(lowered))


def redact_data(value: Any) -> Any:
    """A copy of a JSON-like value with secret-named keys masked and every string `redact`ed."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            key: (
                MASK
                if isinstance(key, str) and is_secret_key(key) and item not in (None, "")
                else redact_data(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_data(item) for item in value]
    if isinstance(value, tuple):
        return tuple(redact_data(item) for item in value)
    return value


def install_log_redaction() -> None:
    """Every log record's message (after `%` formatting) and traceback go through `redact`. Idempotent."""
    current = logging.getLogRecordFactory()
    if getattr(current, "_callgate_redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        if record.exc_info and not record.exc_text:
            # A traceback quotes the values it failed on; every formatter reuses this text.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is logging's to report, not ours
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return record

    factory._callgate_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def install_traceback_redaction() -> None:
    """An uncaught exception's traceback is printed through `redact` (the CLI's last resort: an
    exception message may hold a URL with its password). Idempotent."""
    if getattr(sys.excepthook, "_callgate_redacts", False):
        return

    def hook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        sys.stderr.write(redact("".join(traceback.format_exception(kind, error, tb))))

    hook._callgate_redacts = True  # type: ignore[attr-defined]
    sys.excepthook = hook
