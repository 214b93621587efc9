"""What the Twilio channel needs to know: the account, the public URL, Twilio's API base URL.

`public_url` is the base URL the world reaches `callgate serve --http` at (`--public-url`): Twilio
signs each webhook over it + the path, and the Media Stream URL in our TwiML is derived from it
(https → wss). Behind ngrok or cloudflared it is the tunnel's URL, not the local listener's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_API_BASE_URL = "https://api.twilio.com"

VOICE_PATH = "/twilio/voice"
STATUS_PATH = "/twilio/status"
STREAM_PATH = "/twilio/stream"
DIAL_STATUS_PATH = "/twilio/dial-status"  # + /{token}: a blind transfer's <Number>/<Sip> progress
DIAL_ACTION_PATH = "/twilio/dial-action"  # + /{token}: where the caller goes when that <Dial> ends


class TwilioConfigError(ValueError):
    """The Twilio channel cannot start with these settings (the message says what to set)."""


@dataclass(frozen=True)
class TwilioConfig:
    account_sid: str
    auth_token: str
    public_url: str
    api_base_url: str = DEFAULT_API_BASE_URL
    hangup_delay_ms: int = 200  # DESIGN §8: the far end's jitter allowance before hang-up/redirect
    ring_timeout: float = 30.0  # default for an outbound leg when the caller gives none
    stream_timeout: float = 15.0  # an answered leg whose Media Stream never connects has failed
    transfer_timeout: float = 60.0  # a blind transfer's destination must answer within this

    def __post_init__(self) -> None:
        parts = urlsplit(self.public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TwilioConfigError(
                "--public-url must be an http(s) URL such as https://example.ngrok.app,"
                f" not {self.public_url!r}"
            )
        if not self.auth_token:
            raise TwilioConfigError("TWILIO_AUTH_TOKEN is not set: webhooks cannot be verified")

    @classmethod
    def from_env(cls, env: Mapping[str, str], public_url: str, **overrides: object) -> TwilioConfig:
        """TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and, for tests or a regional proxy,
        CALLGATE_TWILIO_API_URL (Twilio's REST API base URL)."""
        return cls(
            account_sid=env.get("TWILIO_ACCOUNT_SID", ""),
            auth_token=env.get("TWILIO_AUTH_TOKEN", ""),
            public_url=public_url,
            api_base_url=env.get("CALLGATE_TWILIO_API_URL") or DEFAULT_API_BASE_URL,
            **overrides,  # type: ignore[arg-type]
        )

    def url(self, path: str) -> str:
        """The public URL of one of our endpoints (what Twilio calls and signs)."""
        return self.public_url.rstrip("/") + path

    @property
    def stream_url(self) -> str:
        """The Media Stream websocket URL: the public URL with ws(s) for http(s)."""
        base = self.public_url.rstrip("/")
        scheme, _, rest = base.partition("://")
        return ("wss" if scheme == "https" else "ws") + "://" + rest + STREAM_PATH
