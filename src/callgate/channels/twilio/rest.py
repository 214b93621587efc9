"""Call control through Twilio's REST API, with the official `twilio` package.

The package's generated resources (`client.calls(sid).update_async(...)`) do the URL building,
parameter names and error parsing; its transport is ours: `HttpxTransport`, an `AsyncHttpClient`
on httpx (the project's HTTP library) that sends `https://api.twilio.com/...` to the configured
base URL instead — a regional proxy, or in tests a stand-in on loopback. Being async it never
blocks the call's event loop (the package's own transports are `requests` in a thread or aiohttp).

Every failure becomes a `DialFailed` (DESIGN §3 outcomes), never a crash: 401/403 (credentials),
404, 429 (rate limit), 5xx and network errors are `unreachable` with the reason in the detail;
Twilio's "not a valid number" errors are `rejected`. Ending a call that has already ended is not a
failure (`end()` returns False).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from callgate.channels.twilio.config import DEFAULT_API_BASE_URL, TwilioConfig
from callgate.telephony.base import DialFailed

log = logging.getLogger(__name__)

# Twilio error codes (https://www.twilio.com/docs/api/errors) that mean "that call is already over".
_CALL_OVER = {20404, 21220}
# ... and those that mean "that destination cannot be called".
_BAD_DESTINATION = {13223, 13224, 21210, 21211, 21212, 21214, 21215, 21216, 21217, 21401, 21407, 21421}


class HttpxTransport(AsyncHttpClient):  # type: ignore[misc]
    """The twilio package's transport on httpx, aimed at `base_url` instead of api.twilio.com."""

    def __init__(self, base_url: str, http: httpx.AsyncClient | None = None, timeout: float = 10.0) -> None:
        super().__init__(log, True, timeout)
        self.base_url = base_url.rstrip("/")
        self._http = http if http is not None else httpx.AsyncClient()
        self._own_http = http is None

    def rebase(self, url: str) -> str:
        if url.startswith(DEFAULT_API_BASE_URL):
            return self.base_url + url[len(DEFAULT_API_BASE_URL) :]
        return url

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        response = await self._http.request(
            method.upper(),
            self.rebase(url),
            params=params,  # type: ignore[arg-type]
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout if timeout is not None else self.timeout,
            follow_redirects=allow_redirects,
        )
        return Response(response.status_code, response.text, response.headers)

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()


def _failure(exc: Exception, what: str) -> DialFailed:
    if isinstance(exc, TwilioRestException):
        if exc.code in _BAD_DESTINATION:
            return DialFailed("rejected", f"Twilio: {exc.msg}")
        reason = {401: "credentials refused", 403: "forbidden", 404: "not found", 429: "rate-limited"}.get(
            exc.status, "server error" if exc.status >= 500 else "request refused"
        )
        return DialFailed("unreachable", f"Twilio {what}: {reason} ({exc.status})")
    return DialFailed("unreachable", f"Twilio {what}: {type(exc).__name__}: {exc}")


class TwilioRest:
    """The few REST operations the channel needs, each mapped to DESIGN §3 outcomes."""

    def __init__(self, config: TwilioConfig, http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.transport = HttpxTransport(config.api_base_url, http)
        self.client = Client(
            config.account_sid,
            config.auth_token,
            account_sid=config.account_sid,
            http_client=self.transport,
            environment={},  # no region/edge from the environment: the base URL is ours
        )

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def _call(self, what: str, sid: str, **fields: Any) -> Any:
        try:
            return await self.client.calls(sid).update_async(**fields)
        except (TwilioRestException, httpx.HTTPError, ValueError) as exc:
            raise _failure(exc, what) from exc

    async def end(self, call_sid: str, *, ringing: bool = False) -> bool:
        """Hang up (or, still ringing, cancel) a call; False if it had already ended."""
        status = "canceled" if ringing else "completed"
        try:
            await self.client.calls(call_sid).update_async(status=status)
        except TwilioRestException as exc:
            if exc.status == 404 or exc.code in _CALL_OVER:
                log.info("twilio call %s already ended (%s)", call_sid, exc.status)
                return False
            raise _failure(exc, "hang-up") from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise _failure(exc, "hang-up") from exc
        return True

    async def redirect(self, call_sid: str, twiml: str, what: str = "redirect") -> None:
        """Give the call new TwiML (a transfer's <Dial>, a conference)."""
        await self._call(what, call_sid, twiml=twiml)

    async def create(self, *, to: str, from_: str, twiml: str, status_callback: str, timeout: int) -> str:
        """Place an outbound call running `twiml` once answered; its SID."""
        try:
            call = await self.client.calls.create_async(
                to=to,
                from_=from_,
                twiml=twiml,
                status_callback=status_callback,
                status_callback_event=["initiated", "ringing", "answered", "completed"],
                status_callback_method="POST",
                timeout=timeout,
            )
        except (TwilioRestException, httpx.HTTPError, ValueError) as exc:
            raise _failure(exc, "dial") from exc
        return str(call.sid)
