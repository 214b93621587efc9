"""The destination policy (issue 10, item 2): a model value passed back by a server stays the
model's, a server's caller ID is checked, globs match numbers digit by digit and SIP URIs part by
part, free text names only phone numbers, and what is dialled is what was checked."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callgate.agent.decisions import Transfer
from callgate.channels.sim import SimWorld
from callgate.control.policy import (
    CALLER_ID_REFUSED,
    DESTINATION_REFUSED,
    DestinationPolicy,
    collect_literals,
    dial_form,
    matches_any,
    parse_sip,
)
from callgate.swaig import CallContext, FunctionRuntime
from callgate.swaig.guarded_transport import guarded_client
from callgate.swaig.provenance import derived_from, server_strings
from callgate.swml.loader import parse_document
from callgate.swml.models import AI, Document
from callgate.telephony.clock import VirtualClock, run_virtual

from .security_support import ROOT, Receiver, dynamic_transfer, run_cli, sim_controller

CALLER = "+15551230000"
CALLED = "+15559870000"


def _document(ai: dict[str, Any]) -> Document:
    return parse_document({"sections": {"main": [{"ai": ai}]}}).document


# ---------------------------------------------------------------- the echoing server


async def test_a_data_map_lookup_that_echoes_the_model_number_does_not_make_it_the_servers() -> None:
    """The issue's case against a real loopback lookup API that answers with its query."""
    with Receiver() as lookup:
        lookup.answers["/lookup"] = lambda seen: {"number": seen.path.split("q=", 1)[1].replace("%2B", "+")}
        ai = AI.model_validate(
            {
                "prompt": {"text": "Help desk: +1 555 000 4444."},
                "params": {"swaig_allow_private_urls": True},
                "SWAIG": {
                    "functions": [
                        {
                            "function": "connect_number",
                            "description": "connect",
                            "parameters": {"type": "object", "properties": {"number": {"type": "string"}}},
                            "data_map": {
                                "webhooks": [
                                    {
                                        "url": f"{lookup.url}/lookup?q=${{enc:args.number}}",
                                        "method": "GET",
                                        "output": {
                                            "response": "Connecting.",
                                            "action": [
                                                {
                                                    "SWML": {
                                                        "sections": {
                                                            "main": [{"connect": {"to": "${number}"}}]
                                                        }
                                                    }
                                                }
                                            ],
                                        },
                                    }
                                ]
                            },
                        }
                    ]
                },
            }
        )
        async with guarded_client() as http:
            runtime = FunctionRuntime(ai, CallContext(call_id="c1"), http)
            result = await runtime.call("connect_number", '{"number": "+19005550199"}')
        assert len(lookup.requests) == 1 and result.from_server
        assert result.server_values is not None and "+19005550199" not in result.server_values
        policy = DestinationPolicy.for_document(_document(ai.model_dump(mode="json")), CALLER, CALLED)
        assert policy.check("+19005550199", "server", None, result.server_values) == DESTINATION_REFUSED


@pytest.mark.parametrize(
    ("server_value", "model_value", "derived"),
    [
        ("+19005550199", "+19005550199", True),
        ("+1 900 555 0199", "tel:+19005550199", True),
        ("+19005550199", "9005550199", True),  # the server put +1 in front
        ("sip:19005550199@pbx.example.com", "+1-900-555-0199", True),
        ("sip:boss@evil.example", "evil.example", True),
        ("sip:Boss@Evil.example", "sip:boss@evil.example", True),
        ("+15558880000", "sales", False),  # the server chose the number for "sales"
        ("sip:sales@pbx.example.com", "sales", False),
        ("+15550001234", "1234", False),  # an extension the server mapped to its own DID
        ("+15558880000", "+19005550199", False),
    ],
)
def test_what_derives_from_a_model_value(server_value: str, model_value: str, derived: bool) -> None:
    assert derived_from(server_value, [model_value]) is derived


def test_a_destination_server_echoing_the_transfer_arguments_is_refused() -> None:
    """Vapi's transfer-destination-request: the model's argument comes back as the destination and
    as the caller ID; neither is the server's choice."""
    answer = {"destination": {"type": "number", "number": "+19005550199", "callerId": "+12025550143"}}
    with Receiver({"/route": answer}) as server:
        said = {"+1 900 555 0199", "+12025550143"}
        legs = {"+19005550199": {"answer": True}}
        code, kinds = dynamic_transfer(f"{server.url}/route", said, legs, CALLER)
    assert code == DESTINATION_REFUSED
    assert "dial" not in kinds


def test_server_values_keep_what_the_server_chose() -> None:
    answer = {"to": "+15558880000", "echo": "+19005550199", "from": "+15557770000"}
    chosen = server_strings(answer, {"+19005550199", "sales"})
    assert chosen == {"+15558880000", "+15557770000"}


# ---------------------------------------------------------------- caller ID


def test_a_server_origin_destination_checks_its_caller_id() -> None:
    policy = DestinationPolicy.for_document(
        _document({"prompt": {"text": "Show +1 555 222 0000 when transferring."}}), CALLER, CALLED
    )
    chosen = server_strings({"to": "+15558880000", "from": "+15553334444"}, {"+12025550143"})
    echoed = server_strings({"to": "+15558880000", "from": "+12025550143"}, {"+12025550143"})
    assert policy.check("+15558880000", "server", "+15553334444", chosen) is None
    assert policy.check("+15558880000", "server", "+12025550143", echoed) == CALLER_ID_REFUSED
    # A caller ID templated from the model's arguments was never in the server's answer.
    assert policy.check("+15558880000", "server", "+12025550143", chosen) == CALLER_ID_REFUSED
    for own in (CALLER, CALLED, "+1 (555) 222-0000"):
        assert policy.check("+15558880000", "server", own, chosen) is None


# ---------------------------------------------------------------- globs


@pytest.mark.parametrize(
    ("destination", "pattern", "allowed"),
    [
        ("sip:a@evil.com;x=@pbx.example.com", "sip:*@pbx.example.com", False),
        ("sip:a@evil.com?x=@pbx.example.com", "sip:*@pbx.example.com", False),
        ("sip:a:secret@pbx.example.com", "sip:*@pbx.example.com", False),
        ("sip:a@pbx.example.com:5080", "sip:*@pbx.example.com", False),
        ("sip:a@pbx.example.com;transport=tcp", "sip:*@pbx.example.com", False),
        ("sip:a@pbx.example.com;transport=tcp", "sip:*@pbx.example.com;transport=*", True),
        ("sip:a@evil.com", "sip:a@*", True),
        ("sip:a@pbx.example.com.evil.com", "sip:*@pbx.example.com", False),
        ("sip:desk@pbx.example.com", "sip:*@pbx.example.com", True),
        ("Desk@PBX.example.com", "sip:*@pbx.example.com", True),
        ("+1555,,,19005550199", "+1555*", False),
        ("+1555w9005550199", "+1555*", False),
        ("+1555p900", "+1555*", False),
        ("+1555;900", "+1555*", False),
        ("+1555#900", "+1555*", False),
        ("+1555*900", "+1555*", False),
        ("+1555 9005", "+1555*", True),
        ("tel:+1-555-900-5000", "+1555*", True),
        ("+1555-0100", "+1 (555) *", True),
        ("+1555,,,1900", "+1555,,,1900", True),  # written out exactly, it is allowed exactly
    ],
)
def test_transfer_allow_globs(destination: str, pattern: str, allowed: bool) -> None:
    assert matches_any(destination, [pattern]) is allowed


_SEPARATORS = st.sampled_from(["", " ", "-", ".", "(", ")"])
_PAUSES = st.sampled_from([*",;wWpP#*xX", "ext", "\t,", "~", "/"])


@settings(max_examples=300, deadline=None)
@given(
    digits=st.text("0123456789", min_size=1, max_size=12),
    seps=st.lists(_SEPARATORS, min_size=15, max_size=15),
)
def test_property_punctuated_spellings_of_an_allowed_number_match(digits: str, seps: list[str]) -> None:
    spelled = "+1" + "".join(s + d for s, d in zip(seps, "555" + digits, strict=False))
    assert matches_any(spelled, ["+1555*"])
    assert dial_form(spelled) == "+1555" + digits


@settings(max_examples=300, deadline=None)
@given(
    head=st.text("0123456789", max_size=4),
    pause=_PAUSES,
    tail=st.text("0123456789", min_size=1, max_size=12),
)
def test_property_pause_and_dtmf_characters_never_pass_a_number_glob(
    head: str, pause: str, tail: str
) -> None:
    assert not matches_any(f"+1555{head}{pause}{tail}", ["+1555*", "+1*", "*"])


_URI_CHARS = st.text(alphabet="abcxyz019@;?:=&.-_+%*<>/ ", max_size=30)


@settings(max_examples=500, deadline=None)
@given(text=_URI_CHARS)
def test_property_a_sip_glob_never_lets_another_host_through(text: str) -> None:
    for spelled in (text, f"sip:{text}", f"sip:{text}@pbx.example.com", f"sip:a@{text}"):
        if matches_any(spelled, ["sip:*@pbx.example.com"]):
            uri = parse_sip(dial_form(spelled))
            assert uri is not None and uri.host == "pbx.example.com", spelled
            assert not uri.params and not uri.headers and uri.port is None
            assert "@" not in (uri.user or "") and ":" not in (uri.user or "")


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="0123456789+ ()-.,;wp#*tel:", max_size=25))
def test_property_an_allowed_number_is_dialled_as_checked_digits(text: str) -> None:
    if matches_any(text, ["+1555*"]):
        assert re.fullmatch(r"\+1555[0-9]*", dial_form(text)), text


# ---------------------------------------------------------------- free text


def test_prices_street_numbers_and_dates_in_the_prompt_are_not_destinations() -> None:
    doc = _document(
        {
            "prompt": {
                "text": (
                    "The widget costs $1,299.00 or 1299.99 with tax, or 129999 cents. We are at 1234 Main "
                    "Street, suite 5551234, open since 2019-05-01. Order number 42. Emergency: 911. "
                    "Sales: +1 555 000 2222, support: (555) 000-3333, desk: sip:desk@pbx.example.com, "
                    "fax tel:+15550004444."
                )
            }
        }
    )
    literals = collect_literals(doc)
    assert {"+15550002222", "5550003333", "sip:desk@pbx.example.com", "+15550004444"} <= literals.destinations
    # "suite 5551234" is phone-shaped (7 digits): the rule is about shape, and says so.
    for not_a_destination in ("1299", "129999", "1234", "20190501", "42", "911", "129900", "1", "00"):
        assert not_a_destination not in literals.destinations, not_a_destination
    policy = DestinationPolicy(literals=literals, caller_number=CALLER)
    for asked in ("1299", "1234", "2019-05-01", "911"):
        assert policy.check(asked, "model") == DESTINATION_REFUSED


# ---------------------------------------------------------------- what is dialled


def test_the_dialled_destination_is_the_checked_form() -> None:
    async def main(clock: VirtualClock) -> list[dict[str, Any]]:
        legs = {"+15550002222": {"answer": True}, "sip:Desk@pbx.example.com": {"answer": True}}
        dialled: list[dict[str, Any]] = []
        for asked in ("tel:+1 (555) 000-2222", "SIP:Desk@PBX.Example.COM"):
            world = SimWorld(clock, legs=legs, from_number=CALLER)
            policy = DestinationPolicy(caller_number=CALLER, allow=["+1555*", "sip:*@pbx.example.com"])
            controller = sim_controller(world, clock, policy)
            await controller.answer()
            result = await controller.execute_transfer(
                Transfer(asked, "ims", origin="model", caller_id=" +1 555 123 0000 ")
            )
            assert result.ok
            dialled += [e.data for e in world.timeline.events if e.kind == "dial"]
        return dialled

    dialled = run_virtual(main)
    assert [(d["to"], d["caller_id"]) for d in dialled] == [
        ("+15550002222", CALLER),
        ("sip:Desk@pbx.example.com", CALLER),
    ]


def test_the_policy_example_scenarios_pass_through_the_real_cli() -> None:
    result = run_cli(
        ["test", *(str(p) for p in sorted((ROOT / "examples" / "scenarios").glob("policy_*.yaml")))],
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed, 0 failed" in result.stdout
