"""Is a webhook really from Twilio? `X-Twilio-Signature` checked with the official RequestValidator.

Twilio signs the URL it called — our public URL (`--public-url`) + the path + any query — followed by
the POST parameters sorted by name, with HMAC-SHA1 under the account's auth token, base64-encoded.
Behind a tunnel or proxy the local request URL differs from the one Twilio called, so the public
URL, not the request's, is what we verify against.
"""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import RequestValidator

from callgate.channels.twilio.config import TwilioConfig


class SignatureCheck:
    def __init__(self, config: TwilioConfig) -> None:
        self._config = config
        self._validator = RequestValidator(config.auth_token)

    def public_url(self, path: str, query: str = "") -> str:
        return self._config.url(path) + (f"?{query}" if query else "")

    def valid(self, path: str, query: str, params: Mapping[str, str], signature: str | None) -> bool:
        if not signature:
            return False
        return bool(self._validator.validate(self.public_url(path, query), dict(params), signature))

    def sign(self, path: str, query: str, params: Mapping[str, str]) -> str:
        """What Twilio would send for this request (for tools and tests that play Twilio)."""
        return str(self._validator.compute_signature(self.public_url(path, query), dict(params)))
