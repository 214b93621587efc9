"""The function set, tools, builtins, natives, state actions, the exact webhook request and logs."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from callgate.swaig import FixedClock
from callgate.swaig.actions import Say, Stop, Swml, WaitForUser, WaitSeconds
from callgate.swml.models import AI

from .conftest import EPOCH, LoopServer, Reply, make_runtime, tool_names


def ai_with(functions: list[dict[str, Any]], **extra: Any) -> AI:
    params = {"swaig_allow_private_urls": True, **extra.pop("params", {})}
    swaig = {"functions": functions, **extra.pop("swaig", {})}
    return AI.model_validate({"params": params, "SWAIG": swaig, **extra})


async def test_exact_web_hook_url_request(server: LoopServer, http: httpx.AsyncClient) -> None:
    server.route("POST", "/weather", Reply(body={"response": "The weather in Paris is sunny."}))
    argument = {
        "properties": {"location": {"type": "string", "description": "The location to get the weather for"}},
        "type": "object",
    }
    ai = ai_with(
        [
            {
                "function": "get_weather",
                "purpose": "To determine what the current weather is in a provided location.",
                "argument": argument,
                "web_hook_url": server.base + "/weather",
                "meta_data": {"api": "k"},
                "meta_data_token": "weather-token",
            }
        ]
    )
    runtime = make_runtime(ai, http)
    raw = '{\n "location": "Paris"\n}'
    result = await runtime.call("get_weather", raw)
    assert result.response == "The weather in Paris is sunny."
    request = server.only("POST", "/weather")
    assert request.headers["content-type"] == "application/json"
    assert request.basic_auth is None
    assert request.json == {
        "app_name": "swml app",
        "function": "get_weather",
        "version": "2.0",
        "content_type": "text/swaig",
        "content_disposition": "SWAIG Function",
        "channel_active": True,
        "channel_offhook": True,
        "channel_ready": True,
        "conversation_type": "voice",
        "caller_id_name": "Ann",
        "caller_id_num": "+15551230000",
        "project_id": "project-1",
        "space_id": "space-1",
        "call_id": "call-1",
        "ai_session_id": "session-1",
        "purpose": "To determine what the current weather is in a provided location.",
        "description": "To determine what the current weather is in a provided location.",
        "meta_data_token": "weather-token",
        "meta_data": {"api": "k"},
        "argument": {"parsed": [{"location": "Paris"}], "raw": raw, "substituted": ""},
        "argument_desc": argument,
    }
    entry = runtime.swaig_log[0].to_dict()
    assert entry == {
        "command_name": "get_weather",
        "command_arg": raw,
        "epoch_time": int(EPOCH),
        "url": server.base + "/weather",
        "post_data": request.json,
        "post_response": {"response": "The weather in Paris is sunny."},
    }


async def test_webhook_actions_and_state(server: LoopServer, http: httpx.AsyncClient) -> None:
    answer = {
        "response": "Done for ${caller_id_name}; secret is ${meta_data.pin}.",
        "action": [
            {"set_global_data": {"tier": "gold"}},
            {"set_meta_data": {"pin": "1234"}},
            {"SWML": {"version": "1.0.0", "sections": {"main": [{"hangup": {}}]}}, "transfer": "true"},
            {"toggle_functions": [{"function": "other", "active": False}]},
        ],
        "post_process": True,
    }
    server.route("POST", "/act", Reply(body=answer))
    ai = ai_with(
        [
            {"function": "act", "purpose": "act", "web_hook_url": server.base + "/act"},
            {"function": "other", "purpose": "other", "web_hook_url": server.base + "/act"},
        ],
        global_data={"lang": "en"},
    )
    runtime = make_runtime(ai, http)
    result = await runtime.call("act", "{}")
    # A webhook's answer is expanded without meta_data: the model never gets it that way.
    assert result.response == "Done for Ann; secret is ."
    assert result.post_process is True
    assert runtime.global_data == {"lang": "en", "tier": "gold"}
    assert runtime.meta_data_for("act") == {"pin": "1234"}
    # Same web_hook_url, so the default token (the URL) is shared.
    assert runtime.meta_data_for("other") is runtime.meta_data_for("act")
    assert runtime.meta_data_token(runtime.get("act")) == server.base + "/act"  # type: ignore[arg-type]
    assert isinstance(result.actions[2], Swml) and result.actions[2].transfer
    assert not runtime.is_active("other") and tool_names(runtime) == ["act"]
    second = await runtime.call("act", "{}")
    assert server.requests[-1].json["meta_data"] == {"pin": "1234"}
    assert server.requests[-1].json["global_data"] == {"lang": "en", "tier": "gold"}
    assert second.error is None


async def test_swaig_allow_swml_false_drops_swml(http: httpx.AsyncClient) -> None:
    ai = ai_with(
        [
            {
                "function": "go",
                "purpose": "go",
                "data_map": {
                    "output": {
                        "response": "ok",
                        "action": [
                            {"SWML": {"sections": {"main": [{"connect": {"to": "+1"}}]}}, "stop": True}
                        ],
                    }
                },
            }
        ],
        params={"swaig_allow_swml": "false"},
    )
    runtime = make_runtime(ai, http)
    result = await runtime.call("go", "{}")
    assert result.actions == [Stop()]
    assert any("swaig_allow_swml" in w for w in result.warnings)
    assert runtime.swaig_log[0].error is not None


async def test_tools_list(http: httpx.AsyncClient) -> None:
    ai = ai_with(
        [
            {
                "function": "lookup",
                "description": "Look things up",
                "parameters": {
                    "type": "object",
                    "properties": {"q": {"type": "string", "required": True}},
                },
                "data_map": {"output": {"response": "x"}},
                "meta_data": {"secret": "never-shown"},
            },
            {
                "function": "off",
                "purpose": "off",
                "active": "false",
                "data_map": {"output": {"response": "x"}},
            },
            {"function": "end_call", "purpose": "Hang up when the caller is done", "builtin": "hangup"},
            {"function": "startup_hook", "purpose": "reserved", "data_map": {"output": {"response": "x"}}},
        ],
        swaig={"native_functions": ["check_time", "wait_for_user", "no_such_native"]},
    )
    runtime = make_runtime(ai, http)
    tools = runtime.tools()
    assert [t["function"]["name"] for t in tools] == ["lookup", "end_call", "check_time", "wait_for_user"]
    assert tools[0] == {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look things up",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        },
    }
    assert "never-shown" not in json.dumps(tools)
    assert any("no_such_native" in w for w in runtime.warnings)
    assert runtime.set_active("nope", True) is False


async def test_builtin_and_function_map(http: httpx.AsyncClient) -> None:
    ai = ai_with(
        [{"function": "end_call", "purpose": "end", "builtin": "hangup"}],
        params={"function_map": [{"Function": "transfer", "MatchFunction": "to_human"}]},
    )
    runtime = make_runtime(ai, http)
    ended = await runtime.call("end_call", '{"reason": "done"}')
    assert ended.builtin == "hangup" and ended.args == {"reason": "done"} and ended.error is None
    mapped = await runtime.call("to_human", "{}")
    assert mapped.builtin == "transfer"
    missing = await runtime.call("nope", "{}")
    assert missing.error is not None and "does not exist" in missing.response
    assert runtime.swaig_log[-1].command_name == "nope"


async def test_natives(http: httpx.AsyncClient) -> None:
    ai = ai_with([], swaig={"native_functions": ["check_time", "wait_seconds", "wait_for_user"]})
    runtime = make_runtime(ai, http, clock=FixedClock(EPOCH))
    chicago = await runtime.call("check_time", '{"timezone": "chicago"}')
    assert chicago.response == "It is 9:04 AM on Sunday, November 22, 2026 in America/Chicago (CST)."
    tokyo = await runtime.call("check_time", '{"timezone": "Asia/Tokyo"}')
    assert "12:04 AM on Monday, November 23, 2026" in tokyo.response
    utc = await runtime.call("check_time", "{}")
    assert utc.response == "It is 3:04 PM on Sunday, November 22, 2026 in UTC (UTC)."
    bad = await runtime.call("check_time", '{"timezone": "Atlantis"}')
    assert bad.error is not None and "Atlantis" in bad.response
    waited = await runtime.call("wait_seconds", '{"seconds": 20}')
    assert waited.actions == [WaitSeconds(20.0)]
    capped = await runtime.call("wait_seconds", '{"seconds": 99999}')
    assert capped.actions == [WaitSeconds(600.0)]
    wrong = await runtime.call("wait_seconds", '{"seconds": "soon"}')
    assert wrong.error is not None and wrong.actions == []
    hold = await runtime.call("wait_for_user", "")
    assert hold.actions == [WaitForUser()]
    assert len(runtime.swaig_log) == 8


async def test_local_tz_is_check_time_default(http: httpx.AsyncClient) -> None:
    runtime = make_runtime(
        ai_with([], swaig={"native_functions": ["check_time"]}, params={"local_tz": "Europe/Paris"}), http
    )
    assert "4:04 PM" in (await runtime.call("check_time", "{}")).response


async def test_credentials_in_url_and_no_password_in_logs(
    server: LoopServer, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    server.route("POST", "/secure", Reply(body={"response": "ok"}))
    url = server.base.replace("http://", "http://alice:pa55word@") + "/secure"
    ai = ai_with(
        [
            {
                "function": "f",
                "purpose": "p",
                "web_hook_url": url,
                "web_hook_auth_user": "bob",
                "web_hook_auth_password": "other",
            }
        ]
    )
    runtime = make_runtime(ai, http)
    caplog.set_level(logging.DEBUG)
    assert (await runtime.call("f", "{}")).response == "ok"
    assert server.requests[0].basic_auth == ("alice", "pa55word")  # URL credentials win
    server.routes.clear()  # now the webhook 404s (non-JSON) — a failure path that logs
    await runtime.call("f", "{}")
    dumped = json.dumps([e.to_dict() for e in runtime.swaig_log])
    assert "pa55word" not in dumped and "other" not in dumped
    assert "pa55word" not in caplog.text
    assert runtime.swaig_log[0].url == server.base + "/secure"


async def test_function_auth_overrides_defaults(server: LoopServer, http: httpx.AsyncClient) -> None:
    server.route("POST", "/h", Reply(body={"response": "ok"}))
    ai = ai_with(
        [
            {"function": "a", "purpose": "a", "web_hook_auth_user": "fn", "web_hook_auth_pass": "fnpass"},
            {"function": "b", "purpose": "b"},
        ],
        swaig={
            "defaults": {
                "web_hook_url": server.base + "/h",
                "web_hook_auth_user": "d",
                "web_hook_auth_password": "dp",
            }
        },
    )
    runtime = make_runtime(ai, http)
    await runtime.call("a", "{}")
    await runtime.call("b", "{}")
    assert [r.basic_auth for r in server.requests] == [("fn", "fnpass"), ("d", "dp")]


async def test_function_without_target_is_an_error(http: httpx.AsyncClient) -> None:
    runtime = make_runtime(ai_with([{"function": "lonely", "purpose": "nothing"}]), http)
    result = await runtime.call("lonely", "{}")
    assert result.error is not None and result.response.startswith("The function lonely failed")


async def test_data_map_post_params_foreach_and_expressions(
    server: LoopServer, http: httpx.AsyncClient
) -> None:
    server.route(
        "POST",
        "/search",
        Reply(
            body={"total": 3, "results": [{"title": "A"}, {"title": "B"}, {"title": "C"}], "kind": "books"}
        ),
    )
    ai = ai_with(
        [
            {
                "function": "search",
                "purpose": "search",
                "data_map": {
                    "webhooks": [
                        {
                            "url": server.base + "/search",
                            "method": "GET",
                            "params": {"q": "${args.query}", "caller": "${caller_id_num}", "n": 2},
                            "input_args_as_params": True,
                            "foreach": {
                                "input_key": "results",
                                "output_key": "found",
                                "max": 2,
                                "append": "${this.title};",
                            },
                            "expressions": [
                                {"string": "${kind}", "pattern": "^films$", "output": {"response": "films"}},
                            ],
                            "output": {
                                "response": "${total} for ${input.args.query}: ${found}",
                                "action": [{"say": "${response.kind}"}],
                            },
                        }
                    ]
                },
            }
        ]
    )
    runtime = make_runtime(ai, http)
    result = await runtime.call("search", '{"query": "dune", "limit": 5}')
    assert result.response == "3 for dune: A;B;"
    assert result.actions == [Say("books")]
    request = server.only("POST", "/search")
    assert request.json == {"q": "dune", "caller": "+15551230000", "n": 2, "query": "dune", "limit": 5}


async def test_data_map_array_answer_and_form_param(server: LoopServer, http: httpx.AsyncClient) -> None:
    server.route("POST", "/form", Reply(body=[{"joke": "knock knock"}]))
    ai = ai_with(
        [
            {
                "function": "joke",
                "purpose": "joke",
                "data_map": {
                    "webhooks": [
                        {
                            "url": server.base + "/form",
                            "method": "POST",
                            "params": {"k": "${args.k}"},
                            "form_param": "payload",
                            "output": {"response": "${array[0].joke}"},
                        }
                    ]
                },
            }
        ]
    )
    runtime = make_runtime(ai, http)
    assert (await runtime.call("joke", '{"k": "v"}')).response == "knock knock"
    request = server.only("POST", "/form")
    assert request.body == b"payload=%7B%22k%22%3A+%22v%22%7D"


async def test_webhook_answer_variants(server: LoopServer, http: httpx.AsyncClient) -> None:
    server.route("POST", "/one", Reply(body={"response": {"n": 1}, "action": {"say": "single object"}}))
    server.route(
        "POST", "/bad", Reply(body={"response": "ok", "action": [{"hold": "forever"}, "junk", {"say": "x"}]})
    )
    runtime = make_runtime(
        ai_with(
            [
                {"function": "one", "purpose": "o", "web_hook_url": server.base + "/one"},
                {"function": "bad", "purpose": "b", "web_hook_url": server.base + "/bad"},
            ]
        ),
        http,
    )
    one = await runtime.call("one", "{}")
    assert one.response == '{"n": 1}' and one.actions == [Say("single object")]
    bad = await runtime.call("bad", "{}")
    assert bad.response == "ok"
    assert bad.actions[-1] == Say("x") and len(bad.actions) == 3
    assert len(bad.warnings) == 2


async def test_include_answer_forms_and_failures(server: LoopServer, http: httpx.AsyncClient) -> None:
    server.route("POST", "/single", Reply(body={"function": "solo", "purpose": "solo"}))
    server.route(
        "POST",
        "/wrapped",
        Reply(
            body={
                "functions": [{"function": "wrapped", "purpose": "w"}, {"purpose": "no name"}],
                "defaults": {"web_hook_url": server.base + "/run"},
            }
        ),
    )
    server.route("POST", "/run", Reply(body={"response": "ran"}))
    server.route("POST", "/broken", Reply(body="nope", content_type="text/plain"))
    ai = ai_with(
        [],
        swaig={
            "includes": [
                {"url": server.base.replace("http://", "http://u:p@") + "/single", "functions": ["solo"]},
                {
                    "url": server.base + "/wrapped",
                    "functions": [],
                    "auth_user": "au",
                    "auth_password": "ap",
                    "meta_data": {"store": 1},
                },
                {"url": server.base + "/broken", "functions": ["x"]},
            ]
        },
    )
    runtime = make_runtime(ai, http)
    await runtime.load_includes()
    assert tool_names(runtime) == ["solo", "wrapped"]
    assert server.requests[0].basic_auth == ("u", "p")
    assert server.requests[1].basic_auth == ("au", "ap")
    assert server.requests[1].json["meta_data"] == {"store": 1}
    assert (await runtime.call("wrapped", "{}")).response == "ran"
    solo = await runtime.call("solo", "{}")  # called at the include URL: it answers a definition
    assert solo.response == ""
    assert server.requests[-1].basic_auth == ("u", "p")
    errors = [e.error for e in runtime.swaig_log if e.command_name == "get_signature"]
    assert errors[0] is None and errors[1] is not None and "not JSON" in (errors[2] or "")


async def test_unexpected_transport_error_never_raises() -> None:
    def explode(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("transport bug")

    async with httpx.AsyncClient(transport=httpx.MockTransport(explode)) as client:
        ai = ai_with([{"function": "f", "purpose": "p", "web_hook_url": "https://hooks.example.com/f"}])
        runtime = make_runtime(ai, client)
        result = await runtime.call("f", "{}")
    assert result.error == "internal error (RuntimeError)"
    assert result.response == "The function f failed: internal error (RuntimeError)."
    assert runtime.swaig_log[-1].error == result.error


async def test_stub_transport_is_used_for_public_urls() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"response": "stubbed"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        ai = ai_with([{"function": "f", "purpose": "p", "web_hook_url": "https://hooks.example.com/f"}])
        ai.params.swaig_allow_private_urls = False
        result = await make_runtime(ai, client).call("f", "{}")
    assert result.response == "stubbed" and seen == ["https://hooks.example.com/f"]


async def test_fillers(http: httpx.AsyncClient) -> None:
    output = {"output": {"response": "ok"}}
    ai = ai_with(
        [
            {"function": "listed", "purpose": "p", "fillers": ["one moment"], "data_map": output},
            {
                "function": "by_lang",
                "purpose": "p",
                "fillers": {"fr-FR": ["un instant"], "en-US": ["hold on"]},
                "data_map": output,
            },
            {"function": "plain", "purpose": "p", "data_map": output},
            {"function": "quiet", "purpose": "p", "skip_fillers": True, "data_map": output},
        ],
        languages=[{"name": "French", "code": "fr-FR", "voice": "v", "function_fillers": ["je regarde"]}],
    )
    runtime = make_runtime(ai, http)
    assert (await runtime.call("listed", "{}")).fillers == ["one moment"]
    assert (await runtime.call("by_lang", "{}")).fillers == ["un instant"]
    assert (await runtime.call("plain", "{}")).fillers == ["je regarde"]
    assert (await runtime.call("quiet", "{}")).fillers == []


async def test_optional_request_fields(server: LoopServer, http: httpx.AsyncClient) -> None:
    from .conftest import make_context

    server.route("POST", "/h", Reply(body={"response": "ok"}))
    ai = ai_with(
        [{"function": "f", "purpose": "p", "web_hook_url": server.base + "/h"}],
        params={"swaig_post_conversation": True, "app_name": "frank"},
    )
    context = make_context(swml_vars={"ai_result": "success"}, conversation_id="conv-1")
    runtime = make_runtime(ai, http, context=context)
    log = [{"role": "user", "content": "hi"}]
    await runtime.call("f", "{}", call_log=log)
    body = server.requests[0].json
    assert body["SWMLVars"] == {"ai_result": "success"}
    assert body["call_log"] == log
    assert body["conversation_id"] == "conv-1"
    assert body["app_name"] == "frank"
    assert "global_data" not in body


async def test_duplicate_function_names_keep_the_first(server: LoopServer, http: httpx.AsyncClient) -> None:
    server.route("POST", "/inc", Reply(body=[{"function": "f", "purpose": "remote"}]))
    ai = ai_with(
        [{"function": "f", "purpose": "local", "data_map": {"output": {"response": "local"}}}],
        swaig={"includes": [{"url": server.base + "/inc", "functions": ["f"]}]},
    )
    runtime = make_runtime(ai, http)
    await runtime.load_includes()
    assert (await runtime.call("f", "{}")).response == "local"
    assert any("duplicates" in w for w in runtime.warnings)


async def test_nomatch_output_and_foreach_without_a_list(server: LoopServer, http: httpx.AsyncClient) -> None:
    server.route("GET", "/items", Reply(body={"items": "not a list"}))
    ai = ai_with(
        [
            {
                "function": "check",
                "purpose": "p",
                "data_map": {
                    "expressions": [
                        {
                            "string": "${args.code}",
                            "pattern": "^[0-9]{4}$",
                            "output": {"response": "valid"},
                            "nomatch-output": {"response": "invalid code ${args.code}"},
                        },
                        {"string": "x", "pattern": "x", "output": {"response": "never reached"}},
                    ]
                },
            },
            {
                "function": "items",
                "purpose": "p",
                "data_map": {
                    "webhooks": [
                        {
                            "url": server.base + "/items",
                            "foreach": {"input_key": "items", "output_key": "listed", "append": "${this}"},
                            "output": {"response": "[${listed}]"},
                        }
                    ]
                },
            },
        ]
    )
    runtime = make_runtime(ai, http)
    assert (await runtime.call("check", '{"code": "1234"}')).response == "valid"
    assert (await runtime.call("check", '{"code": "12a"}')).response == "invalid code 12a"
    assert (await runtime.call("items", "{}")).response == "[]"


async def test_template_functions_in_a_data_map_use_the_calls_clock(
    server: LoopServer, http: httpx.AsyncClient
) -> None:
    """SignalWire's documented `log_call` example: `@{strftime_tz …}` in webhook params is the time on
    the call's clock; `@{sleep}` in an output asks the session to wait; a webhook's own answer runs
    functions too."""
    server.route("POST", "/logs", Reply(body={"ok": True}))
    server.route("POST", "/hook", Reply(body={"response": "Your code is @{separate ${args.code}}@{sleep 2}"}))
    ai = ai_with(
        [
            {
                "function": "log_call",
                "description": "Log call details with timestamp",
                "data_map": {
                    "webhooks": [
                        {
                            "url": server.base + "/logs",
                            "method": "POST",
                            "params": {
                                "timestamp": "@{strftime_tz America/Chicago %Y-%m-%d %H:%M:%S}",
                                "call_id": "${call.call_id}",
                                "from": "${call.from}",
                            },
                            "output": {"response": "Logged at @{strftime_tz UTC %H:%M}.@{sleep 1.5}"},
                        }
                    ]
                },
            },
            {"function": "spell", "description": "spell", "web_hook_url": server.base + "/hook"},
        ]
    )
    runtime = make_runtime(ai, http, clock=FixedClock(EPOCH))
    logged = await runtime.call("log_call", "{}")
    assert server.only("POST", "/logs").json == {
        "timestamp": "2026-11-22 09:04:05",
        "call_id": runtime.context.call_id,
        "from": "+15551230000",
    }
    assert logged.response == "Logged at 15:04."
    assert logged.pause == 1.5
    spelled = await runtime.call("spell", '{"code": "AB1"}')
    assert spelled.response == "Your code is A B 1"
    assert spelled.pause == 2.0
