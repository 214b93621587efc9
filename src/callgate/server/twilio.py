"""`/twilio/*` in `callgate serve --http`: a Twilio number's webhooks and Media Streams (DESIGN §8).

On when the account's auth token (`TWILIO_AUTH_TOKEN`) and the public URL (`--public-url`, or
`CALLGATE_PUBLIC_URL`) are both set — Twilio's signatures cannot be checked without them; otherwise
there are no `/twilio/*` routes and a log line says what to set. Each call goes to the call host
like a SIP call (`CallHost.accept`, which attaches speech and runs the agent); a leg dialled for a
warm transfer gets its speech from the host's preparer too. The endpoint is kept in
`context.extras["twilio"]` for other providers (metrics, the admin API).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.routing import BaseRoute

from callgate.channels.twilio import TwilioCall, TwilioConfig, TwilioConfigError, TwilioEndpoint
from callgate.server.app import ServerContext
from callgate.telephony.clock import SystemClock

log = logging.getLogger(__name__)


def routes(context: ServerContext) -> list[BaseRoute]:
    env = context.env
    public_url = str(context.extras.get("public_url") or env.get("CALLGATE_PUBLIC_URL") or "")
    if not public_url or not env.get("TWILIO_AUTH_TOKEN"):
        missing = [
            name
            for name, value in (
                ("--public-url", public_url),
                ("TWILIO_AUTH_TOKEN", env.get("TWILIO_AUTH_TOKEN")),
            )
            if not value
        ]
        log.info("Twilio webhooks are off (set %s to answer a Twilio number)", " and ".join(missing))
        return []
    try:
        config = TwilioConfig.from_env(env, public_url)
    except TwilioConfigError as error:
        log.error("Twilio webhooks are off: %s", error)
        return []
    host: Any = context.live
    accept: Callable[[TwilioCall], Awaitable[None]] = host.accept
    prepare: Callable[[TwilioCall, Any], Awaitable[None]] | None = getattr(host, "prepare", None)

    async def prepare_leg(call: TwilioCall) -> None:
        # Inbound calls are prepared by the host itself, with their document's speech settings.
        if call.direction == "outbound" and prepare is not None:
            await prepare(call, None)

    endpoint = TwilioEndpoint(
        config, clock=SystemClock(), on_call=accept, prepare_leg=prepare_leg, draining=context.draining
    )
    context.extras["twilio"] = endpoint
    log.info("Twilio webhooks at %s/twilio/voice and /twilio/status", public_url.rstrip("/"))
    return endpoint.routes()
