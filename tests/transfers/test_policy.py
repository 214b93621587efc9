"""The destination policy: normalisation, globs, literal collection and the origin rules."""

from __future__ import annotations

from typing import Any

import pytest

from callgate.control.policy import (
    CALLER_ID_REFUSED,
    DESTINATION_REFUSED,
    DestinationPolicy,
    collect_literals,
    matches_any,
    normalise,
    numbers_in_text,
)
from callgate.swml.loader import parse_document
from callgate.swml.models import Document


def document(ai: dict[str, Any], *more: dict[str, Any]) -> Document:
    return parse_document({"sections": {"main": [{"ai": ai}, *more]}}).document


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 (555) 000-2222", "+15550002222"),
        ("+1.555.000.2222", "+15550002222"),
        ("tel:+15550002222", "+15550002222"),
        ("  5550002222 ", "5550002222"),
        ("SIP:Support@PBX.Example.com", "sip:support@pbx.example.com"),
        ("support@pbx.example.com", "sip:support@pbx.example.com"),
        ("sips:desk@example.com;transport=tls", "sips:desk@example.com;transport=tls"),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_numbers_in_free_text() -> None:
    text = (
        "Call sales at +1 (555) 000-2222 or dial 911. Escalate to sip:ops@pbx.example.com; "
        'mail help@example.com. Step 1. <imsagent_transfer_call callee="123456"/>'
    )
    found = numbers_in_text(text)
    assert "+15550002222" in found
    assert "sip:ops@pbx.example.com" in found
    # Only phone numbers (7+ digits) and sip:/tel: URIs name destinations: not short codes, list
    # markers or e-mail addresses.
    assert not {"911", "123456", "1", "sip:help@example.com"} & set(found)


def test_numbers_next_to_each_other_stay_apart() -> None:
    found = numbers_in_text("Dial 1 800 555 0199 - 2 rings, or (555) 000-2222.")
    assert "18005550199" in found
    assert "5550002222" in found


def test_long_digit_runs_are_cheap() -> None:
    # A pathological prompt must not stall loading (the pattern never backtracks exponentially);
    # runs longer than a phone number (15 digits) are not one.
    text = "1" * 20_000 + "x " + "1 " * 5_000 + "y +1 555 000 2222"
    assert numbers_in_text(text) == ["+15550002222"]


@pytest.mark.parametrize(
    ("destination", "patterns", "allowed"),
    [
        ("+15551234567", ["+1555*"], True),
        ("+1 (555) 123-4567", ["+1 555 *"], True),
        ("+19005550199", ["+1555*"], False),
        ("sip:bob@pbx.example.com", ["sip:*@pbx.example.com"], True),
        ("Bob@PBX.example.com", ["sip:*@pbx.example.com"], True),
        ("sip:bob@evil.example.net", ["sip:*@pbx.example.com"], False),
        ("+15550002222", ["+15550002222"], True),
        ("+15550002222", [], False),
    ],
)
def test_globs(destination: str, patterns: list[str], allowed: bool) -> None:
    assert matches_any(destination, patterns) is allowed


def test_literals_everywhere_in_the_document() -> None:
    doc = document(
        {
            "prompt": {"text": "Sales is +1 555 000 2222. Example: <imsagent_transfer_call callee=1234567/>"},
            "global_data": {"hotline": "Our hotline is +1 555 000 9999"},
            "SWAIG": {
                "functions": [
                    {
                        "function": "transfer",
                        "description": "transfer to a department",
                        "data_map": {
                            "expressions": [
                                {
                                    "string": "${args.target}",
                                    "pattern": ".*",
                                    "output": {
                                        "response": "ok",
                                        "action": [
                                            {
                                                "SWML": {
                                                    "sections": {
                                                        "main": [
                                                            {
                                                                "connect": {
                                                                    "to": "+15550003333",
                                                                    "from": "+15559870000",
                                                                }
                                                            },
                                                            {"connect": {"to": "${args.target}"}},
                                                        ]
                                                    }
                                                }
                                            }
                                        ],
                                    },
                                }
                            ]
                        },
                        "meta_data": {"table": {"sales": "+1YYYYYYYYYY"}},
                    },
                    {
                        "function": "xfer",
                        "builtin": "transfer",
                        "transfer": {
                            "destinations": [
                                "+15550004444",
                                {
                                    "name": "desk",
                                    "sipUri": "sip:desk@pbx.example.com",
                                    "callerId": "+15550005555",
                                },
                                {"type": "assistant", "assistantName": "bea"},
                            ],
                            "assistants": {"billing": "billing.yaml"},
                        },
                    },
                ]
            },
        },
        {"sip_refer": {"to_uri": "sip:refer@pbx.example.com"}},
        {"connect": {"serial": [{"to": "+15550006666", "from": "+15550007777"}]}},
    )
    literals = collect_literals(doc)
    for expected in (
        "+15550002222",
        "1234567",
        "+15550009999",
        "+15550003333",
        "+1YYYYYYYYYY",
        "+15550004444",
        "sip:desk@pbx.example.com",
        "sip:refer@pbx.example.com",
        "+15550006666",
    ):
        assert expected in literals.destinations, expected
    assert {"+15559870000", "+15550005555", "+15550007777"} <= literals.caller_ids
    assert {"bea", "billing"} <= literals.assistants
    # A template is not a literal: whatever it expands to is checked at transfer time.
    assert not any("${" in value for value in literals.destinations)


def test_origin_rules_without_transfer_allow() -> None:
    policy = DestinationPolicy.for_document(
        document({"prompt": {"text": "Transfer to +15550002222 only."}}), caller_number="+15551230000"
    )
    assert policy.check("+1 555 000 2222", "model") is None
    assert policy.check("+15550002222", "document") is None
    assert policy.check("+19005550199", "model") == DESTINATION_REFUSED
    assert policy.check("+19005550199", "document") == DESTINATION_REFUSED  # a template filled by the model
    assert policy.check("+19005550199", "server") is None  # the customer's own server chose it
    assert policy.check("", "server") == DESTINATION_REFUSED
    assert policy.check("   ", "document") == DESTINATION_REFUSED


def test_transfer_allow_replaces_the_literal_rule() -> None:
    doc = document(
        {
            "prompt": {"text": "Our old line +15550002222."},
            "params": {"transfer_allow": ["+1555777*", "sip:*@pbx.example.com"]},
        }
    )
    policy = DestinationPolicy.for_document(doc)
    assert policy.check("+15557770001", "model") is None
    assert policy.check("sip:anyone@pbx.example.com", "model") is None
    assert policy.check("+15550002222", "document") == DESTINATION_REFUSED
    assert policy.check("+19005550199", "server") == DESTINATION_REFUSED
    empty = DestinationPolicy.for_document(document({"params": {"transfer_allow": []}}))
    assert empty.check("+15557770001", "server") == DESTINATION_REFUSED


def test_caller_id_rule() -> None:
    doc = document({"prompt": {"text": "Sales +15550002222, show our main number +15559870000."}})
    policy = DestinationPolicy.for_document(doc, caller_number="+15551230000")
    assert policy.check("+15550002222", "model", None) is None
    assert policy.check("+15550002222", "model", "") is None
    assert policy.check("+15550002222", "model", "+1 (555) 123-0000") is None  # the caller's own
    assert policy.check("+15550002222", "model", "+15559870000") is None  # the document names it
    assert policy.check("+15550002222", "model", "+14155550100") == CALLER_ID_REFUSED
    assert policy.check("+15550002222", "model", "caller_number") == CALLER_ID_REFUSED
    # A server-chosen destination may carry a caller ID the server chose...
    chosen = frozenset({"+15550008888", "+14155550100"})
    assert policy.check("+15550008888", "server", "+14155550100", chosen) is None
    # ...not one it did not return, nor any while what it returned is not tracked.
    assert policy.check("+15550008888", "server", "+14155550101", chosen) == CALLER_ID_REFUSED
    assert policy.check("+15550008888", "server", "+14155550100") == CALLER_ID_REFUSED
    # The call's own numbers are always fine.
    own = DestinationPolicy.for_document(doc, caller_number="+15551230000", called_number="+15557770000")
    assert own.check("+15550002222", "model", "+1 555 777 0000") is None


def test_assistants_only_by_name() -> None:
    doc = document(
        {
            "SWAIG": {
                "functions": [
                    {
                        "function": "t",
                        "builtin": "transfer",
                        "transfer": {
                            "destinations": [],
                            "destination_url": "https://routing.example.com/transfer",
                            "assistants": {"billing": "b.yaml"},
                        },
                    }
                ]
            }
        }
    )
    policy = DestinationPolicy.for_document(doc)
    assert policy.check("assistant:billing", "server") is None
    assert policy.check("assistant:other", "server") == DESTINATION_REFUSED
    other = document({"prompt": {"text": "Escalations: +15550001111."}})
    policy.add_document(other)
    assert policy.check("+15550001111", "model") is None
