"""The private-address guard (issue 10, item 1): every spelling of an internal address is refused,
names are resolved and the connection is pinned to the checked address, on every outbound request
the document controls."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callgate.agent.decisions import DynamicTarget
from callgate.control.destinations import CallFacts, DestinationClient
from callgate.records.model import CallRecord
from callgate.records.store import NewReport, open_store
from callgate.swaig import CallContext, FunctionRuntime
from callgate.swaig.guarded_transport import AddressRefused, GuardedTransport, guarded_client, with_guard
from callgate.swaig.urlguard import Guard, address_refusal, refusal
from callgate.swml.models import AI

from .security_support import (
    ModelThread,
    Receiver,
    RecordingBackend,
    SequenceResolver,
    chat,
    fixed_resolver,
    run_cli,
)

DOTS = ("\u3002", "\uff0e", "\uff61")


def _ai(url: str, **params: Any) -> AI:
    return AI.model_validate(
        {
            "prompt": {"text": "hi"},
            "params": params,
            "SWAIG": {
                "functions": [
                    {
                        "function": "lookup",
                        "description": "look something up",
                        "parameters": {"type": "object", "properties": {}},
                        "web_hook_url": url,
                    }
                ]
            },
        }
    )


# ---------------------------------------------------------------- the URL alone


INTERNAL_SPELLINGS = [
    *(f"http://127{d}0{d}0{d}1:8080/hook" for d in DOTS),
    *(f"http://169{d}254{d}169{d}254/latest/meta-data" for d in DOTS),
    "http://127.0.0.1./hook",
    "http://LOCALHOST./hook",
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "http://017700000001/",
    "http://0/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[2002:a9fe:a9fe::1]/",  # 6to4 of 169.254.169.254
    "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "http://[64:ff9b:1::a00:1]/",  # local-use NAT64 of 10.0.0.1
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
    "http://100.64.0.1/",  # CGNAT
    "http://100.127.255.254/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://[::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fc00::1]/",
    "http://[fec0::1]/",
    "http://[ff02::1]/",
    "http://198.18.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://api.localhost/",
]

PUBLIC_SPELLINGS = [
    "https://api.example.com/hook",
    "http://8.8.8.8/",
    "http://134744072/",  # 8.8.8.8
    "http://[2606:4700::1111]/",
    "http://[2002:808:808::1]/",  # 6to4 of a public address
    "http://[64:ff9b::808:808]/",  # NAT64 of a public address
    "http://b\u00fccher.example/",
]


@pytest.mark.parametrize("url", INTERNAL_SPELLINGS)
def test_every_spelling_of_an_internal_address_is_refused(url: str) -> None:
    assert refusal(url) is not None
    # The flag opens it, unless the HTTP client could not use the URL either (`0177.0.0.1`).
    opened = refusal(url, allow_private=True)
    assert opened is None or opened.startswith("malformed URL")


def test_a_host_the_client_cannot_spell_is_refused_whatever_the_flags() -> None:
    full_width_localhost = "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/hook"
    for allow in (False, True):
        assert "malformed URL" in (refusal(full_width_localhost, allow_private=allow) or "")


@pytest.mark.parametrize("url", PUBLIC_SPELLINGS)
def test_public_addresses_pass_the_url_check(url: str) -> None:
    assert refusal(url) is None


def test_document_host_exemption_uses_the_same_host_normalisation() -> None:
    assert refusal("http://10\u30020\u30020\u30025:9000/hook", document_host="10.0.0.5:9000") is None
    assert refusal("http://10.0.0.5./hook", document_host="10.0.0.5") is None
    assert refusal("http://10.0.0.6/hook", document_host="10.0.0.5") is not None


# ---------------------------------------------------------------- property: spellings of IPv4


def _spellings(value: int) -> st.SearchStrategy[str]:
    a, b, c, d = ipaddress.IPv4Address(value).packed
    forms = [
        f"{a}.{b}.{c}.{d}",
        str(value),
        hex(value),
        f"0{a:o}.0{b:o}.0{c:o}.0{d:o}",
        f"{a}.{(b << 16) | (c << 8) | d}",
        f"{a}.{b}.{(c << 8) | d}",
        f"{hex(a)}.{b}.{c}.{d}",
        f"{a}.{b}.{c}.{d}.",
        f"[::ffff:{a}.{b}.{c}.{d}]",
        f"[2002:{(a << 8) | b:x}:{(c << 8) | d:x}::1]",
        f"[64:ff9b::{a}.{b}.{c}.{d}]",
    ]
    return st.sampled_from(forms).flatmap(
        lambda form: st.sampled_from([".", *DOTS]).map(
            lambda dot: form if form.startswith("[") else form.replace(".", dot)
        )
    )


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**32 - 1).flatmap(lambda v: st.tuples(st.just(v), _spellings(v))))
def test_property_the_url_check_refuses_exactly_the_internal_ipv4_addresses(case: tuple[int, str]) -> None:
    value, host = case
    internal = address_refusal(ipaddress.IPv4Address(value)) is not None
    problem = refusal(f"http://{host}:8080/x")
    if internal:
        assert problem is not None, host
    else:
        # A public address passes, unless the HTTP client could not use the spelling either.
        assert problem is None or problem.startswith("malformed URL"), (host, problem)


# ---------------------------------------------------------------- resolution and pinning


async def _get(transport: GuardedTransport, url: str, guard: Guard | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=transport) as client:
        return await client.get(url, extensions=with_guard(guard or Guard()))


async def test_a_name_that_resolves_inside_is_refused_and_nothing_is_sent() -> None:
    with Receiver() as receiver:
        backend = RecordingBackend({"127.0.0.1": ("127.0.0.1", receiver.port)})
        transport = GuardedTransport(
            resolver=fixed_resolver({"hooks.nip.test": ["127.0.0.1"]}), network_backend=backend
        )
        with pytest.raises(AddressRefused, match=r"hooks\.nip\.test resolves to a refused address"):
            await _get(transport, f"http://hooks.nip.test:{receiver.port}/hook")
        assert backend.connects == [] and receiver.requests == []


async def test_one_internal_answer_among_public_ones_is_enough_to_refuse() -> None:
    backend = RecordingBackend()
    transport = GuardedTransport(
        resolver=fixed_resolver({"mixed.test": ["8.8.8.8", "100.64.1.1"]}), network_backend=backend
    )
    with pytest.raises(AddressRefused, match=r"100\.64\.1\.1"):
        await _get(transport, "http://mixed.test/")
    assert backend.connects == []


async def test_the_connection_goes_to_the_checked_address_with_the_original_host_header() -> None:
    with Receiver() as receiver:
        # 93.184.216.34 stands for the public address; the test network routes it to the receiver.
        backend = RecordingBackend({"93.184.216.34": ("127.0.0.1", receiver.port)})
        rebinding = SequenceResolver([["93.184.216.34"], ["127.0.0.1"]])
        transport = GuardedTransport(resolver=rebinding, network_backend=backend)
        response = await _get(transport, f"http://hooks.example.com:{receiver.port}/hook")
        assert response.status_code == 200
        assert backend.connects == [("93.184.216.34", receiver.port)]
        assert receiver.requests[0].headers["host"] == f"hooks.example.com:{receiver.port}"
        # The next connection looks the name up again: the rebound answer is refused.
        await transport.aclose()
        transport2 = GuardedTransport(resolver=rebinding, network_backend=backend)
        with pytest.raises(AddressRefused):
            await _get(transport2, f"http://hooks.example.com:{receiver.port}/again")
        assert len(receiver.requests) == 1


async def test_tls_is_verified_for_the_original_name_not_the_address() -> None:
    with Receiver() as receiver:
        backend = RecordingBackend({"93.184.216.34": ("127.0.0.1", receiver.port)})
        transport = GuardedTransport(
            resolver=fixed_resolver({"hooks.example.com": ["93.184.216.34"]}), network_backend=backend
        )
        with pytest.raises(httpx.ConnectError):  # the receiver speaks plain HTTP
            await _get(transport, f"https://hooks.example.com:{receiver.port}/hook")
        assert backend.connects == [("93.184.216.34", receiver.port)]
        assert backend.tls_names == ["hooks.example.com"]


async def test_exempt_requests_go_out_unresolved() -> None:
    with Receiver() as receiver:
        resolver = SequenceResolver([["8.8.8.8"]])
        transport = GuardedTransport(resolver=resolver)
        for guard in (
            Guard(allow_private=True),
            Guard(document_host=f"127.0.0.1:{receiver.port}"),
            Guard(exempt=lambda url: True),
        ):
            response = await _get(transport, f"{receiver.url}/hook", guard)
            assert response.status_code == 200
        await transport.aclose()
        assert resolver.lookups == [] and len(receiver.requests) == 3


async def test_a_redirect_to_an_internal_address_is_refused_at_the_hop() -> None:
    with Receiver() as inside:
        backend = RecordingBackend({"93.184.216.34": ("127.0.0.1", inside.port)})
        redirect = httpx.Response(
            302, headers={"location": f"http://127\u30020\u30020\u30021:{inside.port}/x".encode()}
        )

        class Redirector(GuardedTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                if request.url.host == "hop.example.com":
                    return redirect
                return await super().handle_async_request(request)

        transport = Redirector(resolver=fixed_resolver({}), network_backend=backend)
        async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
            with pytest.raises(AddressRefused):
                await client.get("http://hop.example.com/", extensions=with_guard(Guard()))
        assert inside.requests == []


_PUBLIC = st.sampled_from(["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111", "64:ff9b::808:808"])
_INTERNAL = st.sampled_from(
    [
        "127.0.0.1",
        "10.1.2.3",
        "100.64.0.9",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "2002:7f00:1::",
        "::ffff:192.168.1.1",
        "224.0.0.251",
        "0.0.0.0",
    ]
)


# One transport for every example (building TLS contexts is the slow part); the table changes.
_PROPERTY_TABLE: dict[str, list[str]] = {}
_PROPERTY_BACKEND = RecordingBackend()
_PROPERTY_TRANSPORT = GuardedTransport(
    resolver=fixed_resolver(_PROPERTY_TABLE), network_backend=_PROPERTY_BACKEND
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    host=st.from_regex(r"\A[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,10}){1,2}\Z"),
    answers=st.lists(st.one_of(_PUBLIC, _INTERNAL), min_size=1, max_size=4, unique=True),
)
def test_property_accepted_names_connect_only_to_checked_public_addresses(
    host: str, answers: list[str]
) -> None:
    if host.endswith(".localhost"):
        return
    _PROPERTY_TABLE.clear()
    _PROPERTY_TABLE[host] = answers
    _PROPERTY_BACKEND.connects.clear()  # nothing is routed: every connect fails after recording

    async def attempt() -> bool:
        try:
            await _get(_PROPERTY_TRANSPORT, f"http://{host}/x")
        except AddressRefused:
            return True
        except httpx.ConnectError:
            return False
        raise AssertionError("the test network routes nothing")

    refused = asyncio.run(attempt())
    connects = [address for address, _ in _PROPERTY_BACKEND.connects]
    internal = [a for a in answers if address_refusal(ipaddress.ip_address(a)) is not None]
    assert refused is bool(internal)
    if refused:
        assert connects == []
    else:
        assert connects and all(address in answers for address in connects)


async def test_real_resolution_refuses_a_host_name_that_points_inside() -> None:
    name = socket.gethostname()
    try:
        infos = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
    except OSError:
        pytest.skip("this machine's host name does not resolve")
    if all(address_refusal(ipaddress.ip_address(str(i[4][0]).split("%")[0])) is None for i in infos):
        pytest.skip("this machine's host name resolves to a public address")
    with Receiver() as receiver:
        async with guarded_client() as client:
            assert Guard().url_refusal(f"http://{name}:{receiver.port}/hook") is None  # the name alone passes
            with pytest.raises(AddressRefused, match="resolves to a refused address"):
                await client.get(f"http://{name}:{receiver.port}/hook", extensions=with_guard(Guard()))
        assert receiver.requests == []


# ---------------------------------------------------------------- every request the document controls


async def test_swaig_webhook_with_unicode_dots_never_reaches_loopback() -> None:
    with Receiver() as receiver:
        url = f"http://127\u30020\u30020\u30021:{receiver.port}/hook"
        async with guarded_client() as http:
            runtime = FunctionRuntime(_ai(url), CallContext(call_id="c1"), http)
            result = await runtime.call("lookup", "{}")
        assert result.error is not None and "refused" in result.error
        assert receiver.requests == []


async def test_data_map_webhook_and_destination_server_are_guarded_too() -> None:
    with Receiver() as receiver:
        inside = f"http://127\uff0e0\uff0e0\uff0e1:{receiver.port}"
        ai = AI.model_validate(
            {
                "prompt": {"text": "hi"},
                "SWAIG": {
                    "functions": [
                        {
                            "function": "lookup",
                            "description": "d",
                            "parameters": {"type": "object", "properties": {}},
                            "data_map": {
                                "webhooks": [
                                    {"url": f"{inside}/dm", "method": "GET", "output": {"response": "ok"}}
                                ],
                                "output": {"response": "fallback"},
                            },
                        }
                    ]
                },
            }
        )
        async with guarded_client() as http:
            result = await FunctionRuntime(ai, CallContext(call_id="c1"), http).call("lookup", "{}")
            assert result.response == "fallback"
            answer = await DestinationClient(http).resolve(
                DynamicTarget(url=f"{inside}/route"), CallFacts("c1", "+15551230000", "+15559870000")
            )
        assert answer.failure is not None and "refused" in answer.failure
        assert receiver.requests == []


async def test_allow_private_and_document_host_still_reach_a_loopback_webhook() -> None:
    with Receiver({"/hook": {"response": "fine"}}) as receiver:
        async with guarded_client() as http:
            allowed = await FunctionRuntime(
                _ai(f"{receiver.url}/hook", swaig_allow_private_urls=True), CallContext(call_id="c1"), http
            ).call("lookup", "{}")
            served = await FunctionRuntime(
                _ai(f"{receiver.url}/hook"),
                CallContext(call_id="c2", document_host=f"127.0.0.1:{receiver.port}"),
                http,
            ).call("lookup", "{}")
        assert allowed.response == "fine" and served.response == "fine"
        assert len(receiver.requests) == 2


def test_chat_refuses_a_unicode_dot_webhook_and_sms_url(tmp_path: Path) -> None:
    with Receiver() as receiver:
        dotted = f"http://127\u30020\u30020\u30021:{receiver.port}"
        agent = tmp_path / "agent.yaml"
        agent.write_text(
            textwrap.dedent(
                f"""\
                version: 1.0.0
                sections:
                  main:
                    - ai:
                        prompt: {{text: "You look things up."}}
                        params: {{sms_webhook_url: "{dotted}/sms"}}
                        SWAIG:
                          functions:
                            - function: lookup
                              description: look it up
                              parameters: {{type: object, properties: {{}}}}
                              web_hook_url: "{dotted}/hook"
                            - function: text_me
                              description: send a text
                              parameters: {{type: object, properties: {{}}}}
                              data_map:
                                output:
                                  response: sent
                                  action:
                                    - SWML:
                                        version: 1.0.0
                                        sections:
                                          main:
                                            - send_sms:
                                                to_number: "+15551230000"
                                                from_number: "+15559870000"
                                                body: hi
                """
            ),
            encoding="utf-8",
        )
        scripts = {
            "agent": [
                {"text": "Hello."},
                {"tool_calls": [{"name": "lookup", "arguments": {}}]},
                {"tool_calls": [{"name": "text_me", "arguments": {}}]},
                {"text": 'Done. <imsagent_hangup endword="Bye."/>'},
            ]
        }
        with ModelThread(scripts) as model:
            result = chat(agent, ["look it up"], model.base_url("agent"), tmp_path / "calls.db")
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert receiver.requests == []
    exported = run_cli(["calls", "export"], env={"CALLGATE_DB": str(tmp_path / "calls.db")})
    record = json.loads(exported.stdout)[0]
    lookup = [e for e in record["swaig_log"] if e["command_name"] == "lookup"]
    assert lookup and "refused" in lookup[0]["error"]
    sms = [e for e in record["timeline"] if e["kind"].startswith("sms-")]
    assert sms and sms[0]["kind"] == "sms-failed" and "refused" in sms[0]["data"]["error"]


# ---------------------------------------------------------------- post_prompt_url (the outbox)


def test_calls_deliver_guards_post_prompt_url_by_the_decision_stored_with_the_report(tmp_path: Path) -> None:
    store_path = tmp_path / "calls.db"
    with Receiver() as receiver:
        rows = {
            "dotted": (f"http://127\u30020\u30020\u30021:{receiver.port}/dotted", "strict"),
            "named": (f"http://{socket.gethostname()}:{receiver.port}/named", "strict"),
            "allowed": (f"{receiver.url}/allowed", "exempt"),  # the document set swaig_allow_private_urls
        }
        with open_store(str(store_path)) as store:
            for name, (url, guard) in rows.items():
                store.save_call(
                    CallRecord(call_id=name),
                    NewReport(f"key-{name}", url, {"call_id": name}, guard=guard),
                    now=0.0,
                )
        result = run_cli(["calls", "deliver", "--no-wait"], env={"CALLGATE_DB": str(store_path)})
        assert result.returncode == 0, result.stderr
        assert [r.path for r in receiver.requests] == ["/allowed"]
    with open_store(str(store_path)) as store:
        errors = {r.call_id: r.last_error or "" for r in store.reports()}
    assert "refused" in errors["dotted"]
    if address_refusal(ipaddress.ip_address(socket.gethostbyname(socket.gethostname()))) is not None:
        assert "resolves to a refused address" in errors["named"]
    assert errors["allowed"] == ""


def test_the_report_guard_is_decided_from_the_document(tmp_path: Path) -> None:
    """`chat` stores the document's decision: a loopback post_prompt_url is refused (the report
    waits, with the reason) unless the document allows private URLs."""
    with Receiver() as receiver:
        for allow in (False, True):
            agent = tmp_path / f"agent-{allow}.yaml"
            agent.write_text(
                textwrap.dedent(
                    f"""\
                    sections:
                      main:
                        - ai:
                            prompt: {{text: "You are Frank."}}
                            post_prompt_url: "{receiver.url}/report-{str(allow).lower()}"
                            params: {{swaig_allow_private_urls: {str(allow).lower()}}}
                    """
                ),
                encoding="utf-8",
            )
            with ModelThread({"agent": [{"text": 'Hi. <imsagent_hangup endword="Bye."/>'}]}) as model:
                chat(agent, [], model.base_url("agent"), tmp_path / f"calls-{allow}.db", timeout=90)
        assert [r.path for r in receiver.requests] == ["/report-true"]
    with open_store(str(tmp_path / "calls-False.db")) as store:
        (report,) = store.reports()
    assert report.guard == "strict" and "refused" in (report.last_error or "")
