"""Every full example of seed 004 loads and evaluates as SignalWire describes, against a real
loopback server standing in for example.com."""

from __future__ import annotations

import json

import httpx

from callgate.swaig.actions import (
    BackToBackFunctions,
    ContextSwitch,
    Say,
    SetMetaData,
    Stop,
    Swml,
    ToggleFunctions,
)

from .conftest import LoopServer, Reply, load_ai, make_runtime, tool_names
from .seed_documents import (
    BLABBERMOUTH,
    DATA_MAP_WEBHOOK_TRANSFER,
    DECLARING_FUNCTIONS,
    EXPRESSIONS_TRANSFER,
    JOKE_TRANSFER,
    STAR_CONTEXT_SWITCH,
    SWML_DATA_MAP_TRANSFER,
    SWML_WEBHOOK_ANSWER,
    SWML_WEBHOOK_TRANSFER,
)


def connect_to(number: str, **extra: str) -> Swml:
    return Swml({"version": "1.0.0", "sections": {"main": [{"connect": {**extra, "to": number}}]}})


async def test_joke_toggles_transfer_on(server: LoopServer, http: httpx.AsyncClient) -> None:
    server.route(
        "GET", "/v1/dadjokes", Reply(body=[{"joke": "I used to hate facial hair, but then it grew on me"}])
    )
    runtime = make_runtime(load_ai(JOKE_TRANSFER, server.base), http)

    assert tool_names(runtime) == ["get_joke"]
    refused = await runtime.call("transfer", '{"target": "sales"}')
    assert refused.error is not None and "not available" in refused.response

    joke = await runtime.call("get_joke", '{"type": "dadjokes"}')
    assert joke.error is None
    assert joke.response == "Tell the user: I used to hate facial hair, but then it grew on me."
    assert joke.actions == [ToggleFunctions([("transfer", True)])]
    request = server.only("GET", "/v1/dadjokes")
    assert request.headers["x-api-key"] == "API TOKEN HERE"
    assert request.body == b""
    assert runtime.is_active("transfer")
    assert tool_names(runtime) == ["transfer", "get_joke"]

    moved = await runtime.call("transfer", '{"target": "Sales"}')
    assert moved.response == "transferred, the call has ended."
    assert moved.actions == [
        Say("Please stand by while I connect your call."),
        connect_to("+1YYYYYYYYYY"),
        Stop(),
    ]

    unknown = await runtime.call("transfer", '{"target": "billing"}')
    assert unknown.response == "I'm sorry, I was unable to transfer your call to billing."
    assert unknown.actions == []


async def test_toggle_written_as_one_object(server: LoopServer, http: httpx.AsyncClient) -> None:
    # The section text writes `toggle_functions: {active: 'true', function: transfer}` (no list).
    document = JOKE_TRANSFER.replace(
        """                        - toggle_functions:
                            - active: 'true'
                              function: transfer""",
        """                        - toggle_functions:
                            active: 'true'
                            function: transfer""",
    )
    assert document != JOKE_TRANSFER
    server.route("GET", "/v1/jokes", Reply(body=[{"joke": "j"}]))
    runtime = make_runtime(load_ai(document, server.base), http)
    result = await runtime.call("get_joke", '{"type": "jokes"}')
    assert result.actions == [ToggleFunctions([("transfer", True)])]
    assert runtime.is_active("transfer")


async def test_blabbermouth_meta_data_is_scoped_and_hidden(
    server: LoopServer, http: httpx.AsyncClient
) -> None:
    server.route(
        "GET",
        "/name_bank",
        Reply(
            body={
                "response": "The user information was stored.",
                "Records": [{"secret": ["Info about user here"]}],
            }
        ),
    )
    runtime = make_runtime(load_ai(BLABBERMOUTH, server.base), http)
    assert tool_names(runtime) == ["store_user"]

    stored = await runtime.call("store_user", '{"name": "Alice"}')
    assert server.only("GET", "/name_bank").path == "/name_bank?name=alice"
    assert stored.response.startswith(
        "The user information was stored. User information can now be looked up"
    )
    assert stored.actions == [
        SetMetaData({"alice": ["Info about user here"]}),
        BackToBackFunctions(True),
        ToggleFunctions([("get_user_info", True)]),
        Say("Your info was stored."),
    ]
    # Both functions share example_token, so get_user_info sees what store_user set.
    assert runtime.meta_data_for("get_user_info") == {"alice": ["Info about user here"]}
    assert runtime.meta_data_for("store_user") is runtime.meta_data_for("get_user_info")
    assert tool_names(runtime) == ["store_user", "get_user_info"]

    told = await runtime.call("get_user_info", '{"name": "ALICE"}')
    assert (
        told.response
        == "The meta_data is valid. User has already been told their information. Do no repeat it."
    )
    assert told.actions == [Say('Your info is ["Info about user here"]'), Stop()]

    # The secret reaches the caller (say) but never the model: not in responses, not in tools.
    for text in (stored.response, told.response, json.dumps(runtime.tools())):
        assert "Info about user here" not in text


async def test_blabbermouth_invalid_name_falls_through(server: LoopServer, http: httpx.AsyncClient) -> None:
    runtime = make_runtime(load_ai(BLABBERMOUTH, server.base), http)
    runtime.set_active("get_user_info", True)
    result = await runtime.call("get_user_info", '{"name": "!!"}')
    assert result.response == "The meta_data is invalid. User has not been told their information."
    assert result.actions == []


async def test_meta_data_token_scoping(server: LoopServer, http: httpx.AsyncClient) -> None:
    document = BLABBERMOUTH.replace(
        "              active: 'false'\n              meta_data_token: example_token",
        "              active: 'false'\n              meta_data_token: other_token",
    )
    server.route("GET", "/name_bank", Reply(body={"Records": [{"secret": "s3"}]}))
    runtime = make_runtime(load_ai(document, server.base), http)
    await runtime.call("store_user", '{"name": "bob"}')
    assert runtime.meta_data_for("store_user") == {"bob": "s3"}
    assert runtime.meta_data_for("get_user_info") == {}
    told = await runtime.call("get_user_info", '{"name": "bob"}')
    assert told.actions == [Say("Your info is "), Stop()]


async def test_expressions_transfer_with_meta_data_table(server: LoopServer, http: httpx.AsyncClient) -> None:
    runtime = make_runtime(load_ai(EXPRESSIONS_TRANSFER, server.base), http)
    result = await runtime.call("transfer", '{"target": "Support"}')
    assert result.response == "transferred, the call has ended."
    assert result.actions == [
        Say("Please stand by while I connect your call."),
        connect_to("+1XXXXXXXXXX", **{"from": "+1XXXXXXXXXX"}),
        Stop(),
    ]
    missing = await runtime.call("transfer", '{"target": "accounting"}')
    assert missing.response == "I'm sorry, I was unable to transfer your call to accounting."
    assert missing.actions == []
    assert server.requests == []
    assert "+1XXXXXXXXXX" not in json.dumps(runtime.tools())


async def test_data_map_webhook_transfer(server: LoopServer, http: httpx.AsyncClient) -> None:
    server.route(
        "GET",
        "/v1/destination",
        Reply(
            body={"response": "Transferring to ${input.args.target}.", "destination_number": "+1XXXXXXXXXX"}
        ),
    )
    runtime = make_runtime(load_ai(DATA_MAP_WEBHOOK_TRANSFER, server.base), http)
    result = await runtime.call("transfer", '{"target": "Sales Team & co"}')
    request = server.only("GET", "/v1/destination")
    assert request.path == "/v1/destination?name=Sales%20Team%20%26%20co"
    assert request.headers["x-api-key"] == "api-token-here"
    assert result.response == "Transferring to Sales Team & co."
    assert result.actions == [connect_to("+1XXXXXXXXXX"), Stop()]
    entry = runtime.swaig_log[-1]
    assert entry.url == f"{server.base}/v1/destination?name=Sales%20Team%20%26%20co"
    assert entry.post_response == {
        "response": "Transferring to Sales Team & co.",
        "action": entry.post_response["action"],
    }


async def test_swml_from_data_map(server: LoopServer, http: httpx.AsyncClient) -> None:
    runtime = make_runtime(load_ai(SWML_DATA_MAP_TRANSFER, server.base), http)
    result = await runtime.call("transfer", '{"destination": "sales"}')
    assert result.response == "Transferring call."
    assert result.actions == [
        Swml(
            {
                "sections": {
                    "main": [
                        {
                            "send_sms": {
                                "to_number": "+1XXXXXXXXXX",
                                "from_number": "+1YYYYYYYYYY",
                                "body": "Call coming from +15551230000",
                            }
                        },
                        {"connect": {"to": "+1XXXXXXXXXX"}},
                    ]
                }
            }
        ),
        Stop(),
    ]


async def test_swml_from_webhook(server: LoopServer, http: httpx.AsyncClient) -> None:
    server.route("POST", "/transfer", Reply(body=SWML_WEBHOOK_ANSWER))
    runtime = make_runtime(load_ai(SWML_WEBHOOK_TRANSFER, server.base), http)
    result = await runtime.call("transfer", '{"destination": "sales"}')
    assert result.error is None
    assert result.response == "Transferring call."
    assert len(result.actions) == 1
    swml = result.actions[0]
    assert isinstance(swml, Swml) and not swml.transfer
    assert swml.document["sections"]["main"][0]["send_sms"]["body"] == "Call coming from +15551230000"
    body = server.only("POST", "/transfer").json
    assert body["function"] == "transfer"
    assert body["argument"] == {
        "parsed": [{"destination": "sales"}],
        "raw": '{"destination": "sales"}',
        "substituted": "",
    }
    assert runtime.swaig_log[-1].post_response == SWML_WEBHOOK_ANSWER


async def test_includes_and_defaults_with_auth(server: LoopServer, http: httpx.AsyncClient) -> None:
    definitions = [
        {
            "function": "get_phone_number",
            "purpose": "Get the phone number of the destination",
            "argument": {"type": "object", "properties": {"place": {"type": "string"}}},
        },
        {
            "function": "get_address",
            "description": "Get the address",
            "parameters": {"type": "object", "properties": {}},
        },
    ]
    server.route(
        "POST",
        "/functions",
        lambda rec: Reply(
            body=definitions
            if rec.json.get("action") == "get_signature"
            else {"response": "+15550001111 is the number"}
        ),
    )
    server.route("POST", "/my-webhook", Reply(body={"response": "It is sunny in Paris."}))
    runtime = make_runtime(load_ai(DECLARING_FUNCTIONS, server.base), http)
    assert tool_names(runtime) == ["get_weather"]

    await runtime.load_includes()
    signature = server.requests[0]
    assert signature.basic_auth == ("me", "secret")
    assert signature.json == {
        "action": "get_signature",
        "functions": ["get_phone_number", "get_address"],
        "content_type": "text/swaig",
        "content_disposition": "function signature request",
        "version": "2.0",
        "project_id": "project-1",
        "space_id": "space-1",
    }
    assert tool_names(runtime) == ["get_weather", "get_phone_number", "get_address"]

    weather = await runtime.call("get_weather", '{"location": "Paris"}')
    assert weather.response == "It is sunny in Paris."
    hook = server.only("POST", "/my-webhook")
    assert hook.basic_auth == ("me", "secret")  # defaults.web_hook_auth_pass, the seed's spelling

    number = await runtime.call("get_phone_number", '{"place": "Louvre"}')
    assert number.response == "+15550001111 is the number"
    call = [r for r in server.requests if r.path == "/functions"][-1]
    assert call.basic_auth == ("me", "secret")
    assert call.json["function"] == "get_phone_number"
    assert call.json["purpose"] == "Get the phone number of the destination"
    for entry in runtime.swaig_log:
        assert "secret" not in json.dumps(entry.to_dict())


async def test_switch_context(server: LoopServer, http: httpx.AsyncClient) -> None:
    runtime = make_runtime(load_ai(STAR_CONTEXT_SWITCH, server.base), http)
    trek = await runtime.call("swap_topics", '{"topic": "Star Trek"}')
    assert trek.response == "OK"
    assert trek.actions == [
        Say("Let me find someone who can help you with StarTrek. Please hold."),
        ContextSwitch(
            system_prompt="Your name is Leonard. You are a bot that knows only about StarTrek.\n",
            user_prompt="I want to talk about StarTrek.",
            consolidate=False,
        ),
    ]
    wars = await runtime.call("swap_topics", '{"topic": "star WARS"}')
    assert isinstance(wars.actions[1], ContextSwitch)
    assert wars.actions[1].system_prompt is not None and "Luke" in wars.actions[1].system_prompt
    other = await runtime.call("swap_topics", '{"topic": "Cooking"}')
    assert other.actions == [Say("I'm sorry, I don't know anything about Cooking. Ending call."), Stop()]


async def test_model_arguments_cannot_reach_meta_data(server: LoopServer, http: httpx.AsyncClient) -> None:
    runtime = make_runtime(load_ai(EXPRESSIONS_TRANSFER, server.base), http)
    sneaky = await runtime.call("transfer", '{"target": "${meta_data.table.sales}"}')
    assert "+1YYYYYYYYYY" not in sneaky.response
    assert sneaky.response == "I'm sorry, I was unable to transfer your call to ${meta_data.table.sales}."


async def test_voicemail_bot_has_no_tools(http: httpx.AsyncClient) -> None:
    document = """
version: 1.0.0
sections:
  main:
    - label: ai
      ai:
        post_prompt_url: https://example.com/my-api
        prompt:
          confidence: 0.6
          temperature: 0.2
          text: |
            You are Franklin's assistant, and your job is to collect messages for him over the phone.
        post_prompt:
          text: |
            Summarize the message as a valid anonymous json object.
"""
    import yaml

    from callgate.swml.models import AI

    verb = yaml.safe_load(document)["sections"]["main"][0]
    runtime = make_runtime(AI.model_validate(verb["ai"]), http)
    assert runtime.tools() == []
    result = await runtime.call("anything", "{}")
    assert result.error is not None and result.actions == []
