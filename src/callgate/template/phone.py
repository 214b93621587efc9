"""`${fmt_ph:…}`: a phone number as a person says or reads it.

`national` (the default) is the number as dialled inside its country — `(234) 567-8901` for a North
American number; `international` is E.164 (`+12345678901`), as SignalWire's `tts_number_format`
writes the two forms. A number without a country code is read as North American. Text that is not
a phone number is left as it was.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import phonenumbers

PhoneStyle = Literal["national", "international"]
STYLES: tuple[PhoneStyle, ...] = ("national", "international")


@lru_cache(maxsize=1024)
def format_phone(text: str, style: PhoneStyle = "national") -> str:
    raw = text.strip()
    if not raw or sum(ch.isdigit() for ch in raw) < 3:
        return text
    try:
        number = phonenumbers.parse(raw, "US")
    except phonenumbers.NumberParseException:
        return text
    if style == "international":
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
