"""Phone numbers as a person says or reads them: `${fmt_ph:…}` and `@{fmt_ph <format> …}`.

Formats (SignalWire's names): `national` — as dialled inside its country, `(234) 567-8901`;
`international` — with the country code, `+1 234-567-8901`; `e164` — `+12345678901`; `rfc3966` — a
tel: URI, `tel:+1-234-567-8901`. A number without a country code is read as North American. Text
that is not a phone number is left as it was.

`${fmt_ph:international:x}` predates the `@{…}` form and writes E.164 (the form SignalWire's
`tts_number_format: international` shows); `PREFIX_FORMATS` keeps that meaning.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import phonenumbers

PhoneStyle = Literal["national", "international", "e164", "rfc3966"]

# `@{fmt_ph <format> …}`: SignalWire's format names (any case).
PHONE_FORMATS: dict[str, PhoneStyle] = {
    "national": "national",
    "international": "international",
    "e164": "e164",
    "rfc3966": "rfc3966",
}
# `${fmt_ph:<format>:…}`.
PREFIX_FORMATS: dict[str, PhoneStyle] = {
    "national": "national",
    "international": "e164",
    "e164": "e164",
    "rfc3966": "rfc3966",
}

_FORMATS = {
    "national": phonenumbers.PhoneNumberFormat.NATIONAL,
    "international": phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    "e164": phonenumbers.PhoneNumberFormat.E164,
    "rfc3966": phonenumbers.PhoneNumberFormat.RFC3966,
}


@lru_cache(maxsize=1024)
def format_phone(text: str, style: PhoneStyle = "national") -> str:
    raw = text.strip()
    if not raw or sum(ch.isdigit() for ch in raw) < 3:
        return text
    try:
        number = phonenumbers.parse(raw, "US")
    except phonenumbers.NumberParseException:
        return text
    return phonenumbers.format_number(number, _FORMATS[style])
