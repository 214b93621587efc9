"""The Twilio channel: a Twilio number's voice webhook, Media Streams, call control by REST (DESIGN §8)."""

from callgate.channels.twilio.call import TwilioCall
from callgate.channels.twilio.config import TwilioConfig, TwilioConfigError
from callgate.channels.twilio.endpoint import TwilioEndpoint
from callgate.channels.twilio.switch import TwilioSwitch


def twilio_routes(endpoint: TwilioEndpoint) -> list:  # type: ignore[type-arg]
    """The `/twilio/*` routes, for `callgate.server`'s app (list concatenation or Mount)."""
    return endpoint.routes()


__all__ = [
    "TwilioCall",
    "TwilioConfig",
    "TwilioConfigError",
    "TwilioEndpoint",
    "TwilioSwitch",
    "twilio_routes",
]
