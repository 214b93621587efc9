"""Ways around the destination policy found by attacking it (docs/security.md), each fixed:

- a SIP user part whose percent-escapes decode to a separator (`sip:a%40evil.com@pbx.example.com`)
  matched `sip:*@pbx.example.com` — the far end decodes `%40` to `@`, so `*` crossed it after all;
- a lookup normalising the model's fullwidth / Arabic-Indic / mathematical digits to ASCII
  (libphonenumber does) made the model's number look like the server's own;
- a destination server echoing the model's number as the `extension` (DTMF sent once the transfer
  answers: on a PBX that dials out on `9`, `9w1900…` is a second, unchecked destination).
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callgate.control.policy import DESTINATION_REFUSED, DestinationPolicy, matches_any
from callgate.swaig.provenance import derived_from, server_strings

from .security_support import Receiver, dynamic_transfer

CALLER = "+15551230000"

ALLOW = ["sip:*@pbx.example.com", "+1555*"]
_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-_", min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(before=_NAME, separator=st.sampled_from('@:;?/<>," \\\x00\n'), after=_NAME)
def test_property_an_escaped_separator_in_the_user_part_never_matches_a_glob(
    before: str, separator: str, after: str
) -> None:
    user = before + quote(separator, safe="") + after
    assert not matches_any(f"sip:{user}@pbx.example.com", ALLOW), user
    policy = DestinationPolicy(allow=list(ALLOW))
    assert policy.check(f"sip:{user}@pbx.example.com", "server") == DESTINATION_REFUSED


@settings(max_examples=100, deadline=None)
@given(user=_NAME)
def test_property_plain_and_harmlessly_escaped_users_still_match(user: str) -> None:
    assert matches_any(f"sip:{user}@pbx.example.com", ALLOW)
    assert matches_any(f"sip:{quote(user, safe='')}%2B1@pbx.example.com", ALLOW)  # `%2B` is a `+`


def test_spellings_that_stay_refused() -> None:
    for destination in (
        "sip:a@pbx.example.com;maddr=evil.com",
        "sips:a@pbx.example.com",
        '"Bob" <sip:a@pbx.example.com>',
        "sip:a@evil.com;x=@pbx.example.com",
        "sip:a@pbx.example.com.evil.com",
        "sip:a:pw@pbx.example.com",
        "sip:a@pbx.example.com?Route=%3Csip:evil.com%3E",
        "+1555,,,19005550199",
        "+1555w9005550199",
        "tel:+15551234567;ext=900",
        "+15551234567@evil.com",
        "+\uff11\uff15\uff15\uff15\uff11\uff12\uff13",  # fullwidth digits
        "0015551234567",
        "01115551234567",
    ):
        assert not matches_any(destination, ALLOW), destination


@pytest.mark.parametrize(
    ("extension", "model_values", "allowed"),
    [
        ("9w19005550199", {"+1 900 555 0199"}, False),  # the model's number, dialled through the PBX
        ("9,,19005550199", {"19005550199"}, False),
        ("19005550199", {"call 1-900-555-0199 please"}, False),
        ("123", {"123"}, True),  # a short extension the caller asked for: harmless
        ("9w15558880000", {"sales"}, True),  # the server's own long extension
    ],
)
def test_a_destination_server_cannot_launder_a_number_through_the_extension(
    extension: str, model_values: set[str], allowed: bool
) -> None:
    answer = {"destination": {"type": "number", "number": "+15558880000", "extension": extension}}
    with Receiver({"/route": answer}) as server:
        code, kinds = dynamic_transfer(
            f"{server.url}/route", model_values, {"+15558880000": {"answer": True}}, CALLER
        )
    if allowed:
        assert code != DESTINATION_REFUSED and "dial" in kinds
    else:
        assert code == DESTINATION_REFUSED and "dial" not in kinds


def test_a_document_extension_is_the_documents() -> None:
    policy = DestinationPolicy(caller_number=CALLER)
    assert policy.extension_allowed("9w15558880000", "document", None)
    assert not policy.extension_allowed("9w15558880000", "model", None)


_DIGIT_SETS = ["0123456789", "０１２３４５６７８９", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗"]


@settings(max_examples=300, deadline=None)
@given(
    number=st.from_regex(r"\A[2-9][0-9]{9}\Z"),
    digits=st.sampled_from(_DIGIT_SETS),
    plus=st.booleans(),
)
def test_property_the_models_number_in_any_digits_stays_the_models(
    number: str, digits: str, plus: bool
) -> None:
    said = ("+1" if plus else "1") + number
    spelled = said.translate(str.maketrans("0123456789", digits))
    # The lookup answers with the number normalised to ASCII E.164, as libphonenumber would.
    answer = {"number": f"+1{number}", "sip": f"sip:1{number}@pbx.example.com"}
    assert derived_from(f"+1{number}", {spelled})
    assert server_strings(answer, {spelled}) == frozenset()
