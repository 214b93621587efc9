"""The webhook failure matrix: every way a webhook can fail gives a defined result and a
swaig_log entry, and nothing raises."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from callgate.swaig.datamap import GENERIC_ERROR
from callgate.swml.models import AI

from .conftest import LoopServer, Reply, closed_port, make_runtime

FALLBACK = "The lookup service is unavailable right now."


def webhook_ai(url: str, *, allow_private: bool = True) -> AI:
    return AI.model_validate(
        {
            "params": {"swaig_allow_private_urls": allow_private},
            "SWAIG": {
                "functions": [
                    {
                        "function": "get_weather",
                        "purpose": "weather",
                        "argument": {"type": "object", "properties": {"city": {"type": "string"}}},
                        "web_hook_url": url,
                    }
                ]
            },
        }
    )


def data_map_ai(url: str, *, fallback: bool = True, allow_private: bool = True, **webhook: Any) -> AI:
    data_map: dict[str, Any] = {
        "webhooks": [{"url": url, "method": "GET", "output": {"response": "Found ${name}."}, **webhook}]
    }
    if fallback:
        data_map["output"] = {"response": FALLBACK, "action": [{"say": "Sorry ${args.city}"}]}
    return AI.model_validate(
        {
            "params": {"swaig_allow_private_urls": allow_private},
            "SWAIG": {"functions": [{"function": "lookup", "purpose": "look up", "data_map": data_map}]},
        }
    )


# (name, server reply or None for "nothing listens", expected fragment of the failure reason)
MATRIX: list[tuple[str, Reply | None, str]] = [
    ("timeout", Reply(delay=3.0, body={"response": "late"}), "no complete answer within"),
    ("refused", None, "connection failed"),
    (
        "500",
        Reply(status=500, body="<html>Internal Server Error</html>", content_type="text/html"),
        "not JSON",
    ),
    ("non-json", Reply(body="sunny, 20 degrees", content_type="text/plain"), "not JSON"),
    ("empty", Reply(body=b""), "empty answer"),
    ("oversized", Reply(body={"response": "x" * 5000}), "larger than 1000 bytes"),
    ("slow-body", Reply(body={"response": "y" * 200}, drip=0.05), "no complete answer within"),
]


def _url(server: LoopServer, reply: Reply | None, path: str) -> str:
    if reply is None:
        return f"http://127.0.0.1:{closed_port()}{path}"
    server.route("POST" if path == "/hook" else "GET", path, reply)
    return server.base + path


@pytest.mark.parametrize(("case", "reply", "reason"), MATRIX, ids=[m[0] for m in MATRIX])
async def test_web_hook_url_failures(
    server: LoopServer, http: httpx.AsyncClient, case: str, reply: Reply | None, reason: str
) -> None:
    runtime = make_runtime(
        webhook_ai(_url(server, reply, "/hook")), http, timeout=0.5, max_response_bytes=1000
    )
    result = await runtime.call("get_weather", '{"city": "Paris"}')
    assert result.error is not None and reason in result.error
    assert result.response.startswith("The function get_weather failed: ")
    assert reason in result.response
    assert result.actions == []
    [entry] = runtime.swaig_log
    assert entry.command_name == "get_weather"
    assert entry.error is not None and reason in entry.error


@pytest.mark.parametrize(("case", "reply", "reason"), MATRIX, ids=[m[0] for m in MATRIX])
async def test_data_map_failures_use_the_fallback_output(
    server: LoopServer, http: httpx.AsyncClient, case: str, reply: Reply | None, reason: str
) -> None:
    runtime = make_runtime(
        data_map_ai(_url(server, reply, "/find")), http, timeout=0.5, max_response_bytes=1000
    )
    result = await runtime.call("lookup", '{"city": "Paris"}')
    assert result.response == FALLBACK
    assert result.error is None
    assert [a.to_json() for a in result.actions] == [{"say": "Sorry Paris"}]
    [entry] = runtime.swaig_log
    assert entry.error is not None and reason in entry.error


async def test_data_map_failure_without_fallback_is_the_generic_error(
    server: LoopServer, http: httpx.AsyncClient
) -> None:
    runtime = make_runtime(data_map_ai(f"http://127.0.0.1:{closed_port()}/x", fallback=False), http)
    result = await runtime.call("lookup", "{}")
    assert result.response == GENERIC_ERROR
    assert result.error is not None
    assert runtime.swaig_log[0].error is not None


async def test_web_hook_url_json_errors(server: LoopServer, http: httpx.AsyncClient) -> None:
    server.route("POST", "/list", Reply(body=[{"response": "in a list"}]))
    server.route("POST", "/five", Reply(status=500, body={"response": "boom"}))
    server.route("POST", "/redirect", Reply(status=302, headers={"Location": "http://127.0.0.1:1/"}))
    for path, reason in (
        ("/list", "JSON list, not an object"),
        ("/five", "HTTP 500"),
        ("/redirect", "HTTP 302"),
    ):
        runtime = make_runtime(webhook_ai(server.base + path), http)
        result = await runtime.call("get_weather", "{}")
        assert result.error is not None and reason in result.error, path
        assert runtime.swaig_log[0].error == result.error
    assert [r.path for r in server.requests] == ["/list", "/five", "/redirect"]  # redirect not followed


async def test_private_addresses_are_refused_without_a_request(
    server: LoopServer, http: httpx.AsyncClient
) -> None:
    server.route("POST", "/hook", Reply(body={"response": "should not be reached"}))
    server.route("GET", "/find", Reply(body={"name": "x"}))
    hook = make_runtime(webhook_ai(server.base + "/hook", allow_private=False), http)
    result = await hook.call("get_weather", "{}")
    assert result.error is not None and "refused" in result.error
    dm = make_runtime(data_map_ai(server.base + "/find", allow_private=False), http)
    fallback = await dm.call("lookup", '{"city": "Oslo"}')
    assert fallback.response == FALLBACK
    assert dm.swaig_log[0].error is not None and "refused" in dm.swaig_log[0].error
    assert server.requests == []


async def test_the_document_host_is_always_allowed(server: LoopServer, http: httpx.AsyncClient) -> None:
    from .conftest import make_context

    server.route("POST", "/hook", Reply(body={"response": "fine"}))
    runtime = make_runtime(
        webhook_ai(server.base + "/hook", allow_private=False),
        http,
        context=make_context(document_host=f"127.0.0.1:{server.port}"),
    )
    result = await runtime.call("get_weather", "{}")
    assert result.response == "fine"


async def test_status_outside_2xx_is_http_code_and_fails_only_by_error_keys(
    server: LoopServer, http: httpx.AsyncClient
) -> None:
    server.route("GET", "/find", Reply(status=404, body={"name": "nobody"}))
    plain = make_runtime(data_map_ai(server.base + "/find"), http)
    assert (await plain.call("lookup", "{}")).response == "Found nobody."
    strict = make_runtime(data_map_ai(server.base + "/find", error_keys=["http_code"]), http)
    assert (await strict.call("lookup", "{}")).response == FALLBACK
    assert strict.swaig_log[0].error == "error key 'http_code' in answer"


async def test_error_keys_mark_failure_whatever_the_value(
    server: LoopServer, http: httpx.AsyncClient
) -> None:
    server.route("GET", "/find", Reply(body={"name": "x", "error": None}))
    runtime = make_runtime(data_map_ai(server.base + "/find", error_keys="error"), http)
    assert (await runtime.call("lookup", "{}")).response == FALLBACK


async def test_data_map_level_error_keys_apply_to_every_webhook(
    server: LoopServer, http: httpx.AsyncClient
) -> None:
    """The SDK's DataMap.global_error_keys writes `error_keys` on the data_map itself."""
    server.route("GET", "/find", Reply(body={"name": "x", "fault": "quota"}))
    ai = data_map_ai(server.base + "/find")
    function = ai.SWAIG.functions[0]
    assert function.data_map is not None
    function.data_map.error_keys = ["fault"]
    runtime = make_runtime(ai, http)
    assert (await runtime.call("lookup", "{}")).response == FALLBACK
    assert runtime.swaig_log[0].error == "error key 'fault' in answer"


async def test_missing_required_args_skip_the_request(server: LoopServer, http: httpx.AsyncClient) -> None:
    server.route("GET", "/find", Reply(body={"name": "x"}))
    runtime = make_runtime(data_map_ai(server.base + "/find", required_args=["city"]), http)
    result = await runtime.call("lookup", '{"country": "NO"}')
    assert result.response == FALLBACK
    assert server.requests == []
    found = await runtime.call("lookup", '{"city": "Oslo"}')
    assert found.response == "Found x."


async def test_bad_regex_at_run_time_is_skipped(http: httpx.AsyncClient) -> None:
    from callgate.swml.models import Expression, Output

    ai = AI.model_validate(
        {
            "SWAIG": {
                "functions": [
                    {
                        "function": "route",
                        "purpose": "route",
                        "data_map": {
                            "expressions": [
                                {"string": "${args.x}", "pattern": ".*", "output": {"response": "ok"}}
                            ]
                        },
                    }
                ]
            }
        }
    )
    data_map = ai.SWAIG.functions[0].data_map
    assert data_map is not None
    # A pattern that escaped load-time validation (e.g. built in code) must not crash a call.
    data_map.expressions.insert(
        0, Expression.model_construct(string="x", pattern="(", output=Output(response="no"))
    )
    runtime = make_runtime(ai, http)
    result = await runtime.call("route", '{"x": "1"}')
    assert result.response == "ok"
    assert any("invalid" in w for w in result.warnings)


async def test_nothing_matches_and_no_output_is_the_generic_error(http: httpx.AsyncClient) -> None:
    ai = AI.model_validate(
        {
            "SWAIG": {
                "functions": [
                    {
                        "function": "route",
                        "purpose": "route",
                        "data_map": {
                            "expressions": [
                                {"string": "${args.x}", "pattern": "^yes$", "output": {"response": "ok"}}
                            ]
                        },
                    }
                ]
            }
        }
    )
    runtime = make_runtime(ai, http)
    result = await runtime.call("route", '{"x": "no"}')
    assert result.response == GENERIC_ERROR and result.error is not None


async def test_guard_exempt_urls_pass(server: LoopServer, http: httpx.AsyncClient) -> None:
    server.route("POST", "/hook", Reply(body={"response": "through"}))
    ai = webhook_ai(server.base + "/hook", allow_private=False)
    exempt = make_runtime(ai, http, guard_exempt=lambda url: url.startswith(server.base + "/"))
    assert (await exempt.call("get_weather", "{}")).response == "through"
    other = make_runtime(ai, http, guard_exempt=lambda url: url.startswith("http://127.0.0.1:1/"))
    assert (await other.call("get_weather", "{}")).error is not None
