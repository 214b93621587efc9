"""Documents that the signalwire-agents SDK really renders (today's generation) load cleanly.

Each test builds an agent with the SDK, renders its SWML offline, checks the document against the
JSON Schema the SDK ships (the reference for today's names), and loads it with callgate.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import signalwire_agents
from referencing import Registry, Resource
from signalwire_agents import AgentBase
from signalwire_agents.core.data_map import DataMap
from signalwire_agents.core.function_result import SwaigFunctionResult
from signalwire_pom import PromptObjectModel

from callgate.swml import AI, LoadResult, load_text, parse_document, render_pom

SCHEMA = json.loads((Path(signalwire_agents.__file__).parent / "schema.json").read_text(encoding="utf-8"))


# The schema's $id is the relative "SWMLObject.json" (its SWML action refers back to it): register it.
_REGISTRY: Registry[Any] = Registry().with_resource("SWMLObject.json", Resource.from_contents(SCHEMA))


def _check_schema(document: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator({"$ref": "SWMLObject.json"}, registry=_REGISTRY)
    validator.validate(_without_transfer_flags(document))


def _without_transfer_flags(value: Any) -> Any:
    """The SDK's `connect()` writes `{SWML: ..., transfer: "true"}`, which its own schema's SWML action
    does not allow (callgate accepts it, DESIGN §4): drop that flag before checking the schema."""
    if isinstance(value, dict):
        drop = "SWML" in value and "transfer" in value
        return {k: _without_transfer_flags(v) for k, v in value.items() if not (drop and k == "transfer")}
    if isinstance(value, list):
        return [_without_transfer_flags(item) for item in value]
    return value


def test_schema_check_can_fail() -> None:
    with pytest.raises(jsonschema.ValidationError):
        _check_schema({"sections": {"main": [{"ai": {"prompt": {"text": "x"}, "bogus": 1}}]}})


def _weather(args: dict[str, Any], raw: dict[str, Any]) -> SwaigFunctionResult:
    return SwaigFunctionResult(f"It is sunny in {args.get('location')}")


def _full_agent() -> AgentBase:
    agent = AgentBase(
        name="frank", route="/frank", host="127.0.0.1", port=3000, basic_auth=("u", "p"), record_call=True
    )
    agent.prompt_add_section("Role", body="You are Frank, a transfer assistant.", bullets=["Be brief"])
    agent.prompt_add_section(
        "Steps",
        body="Follow these steps.",
        numbered=True,
        numbered_bullets=True,
        bullets=["Greet the caller", "Ask for the department"],
    )
    agent.prompt_add_subsection("Steps", "Transfers", body="Use transfer_to.", bullets=["sales", "support"])
    agent.set_post_prompt("Summarize the call as a JSON object.")
    agent.set_post_prompt_llm_params(temperature=0.1, top_p=0.5)
    agent.set_prompt_llm_params(temperature=0.4, presence_penalty=0.1)
    agent.add_hints(["Frank", "SignalWire"])
    agent.add_language(
        name="English",
        code="en-US",
        voice="rime.spore",
        speech_fillers=["um"],
        function_fillers=["one moment"],
    )
    agent.add_pronunciation("API", "A P I", ignore_case=True)
    agent.set_params({"end_of_speech_timeout": 500, "attention_timeout": 15000, "swaig_allow_swml": True})
    agent.set_global_data({"company": "Example Inc"})
    agent.set_native_functions(["check_time", "wait_seconds"])
    agent.add_internal_filler("check_time", "en-US", ["Let me look at the clock"])
    agent.add_function_include("https://functions.example.com/swaig", ["get_address"])
    agent.define_tool(
        name="get_weather",
        description="Get the weather for a city",
        parameters={"location": {"type": "string", "description": "The city"}},
        handler=_weather,
        fillers={"en-US": ["Checking the weather"]},
        wait_file="/hold.mp3",
    )
    agent.define_tool(
        name="summarize_conversation",
        description="Summarize the conversation",
        parameters={"summary": {"type": "string", "description": "The summary"}},
        handler=_weather,
    )
    transfer = (
        DataMap("transfer_to")
        .description("Transfer the caller to a department")
        .parameter("dept", "string", "The department", required=True)
        .expression(
            "${args.dept}",
            r"/^sales$/i",
            SwaigFunctionResult("Connecting you").connect("+15551234567", final=True).say("Hold on"),
        )
        .expression("${args.dept}", r".*", SwaigFunctionResult("Unknown department").hangup())
    )
    lookup = (
        DataMap("lookup")
        .purpose("Look up a caller")
        .parameter("q", "string", "The query")
        .webhook("POST", "https://api.example.com/lookup", headers={"X-Key": "k"}, require_args=["q"])
        .output(
            SwaigFunctionResult("Found ${response.name}")
            .toggle_functions([{"function": "transfer_to", "active": True}])
            .set_metadata({"seen": True})
            .update_global_data({"caller": "${response.name}"})
            .send_sms("+15551234567", "+15557654321", body="You called")
            .sip_refer("sip:desk@example.com")
        )
        .fallback_output(SwaigFunctionResult("Nobody found"))
    )
    agent.register_swaig_function(transfer.to_swaig_function())
    agent.register_swaig_function(lookup.to_swaig_function())
    return agent


def _render(agent: AgentBase, call_id: str = "call-0001") -> dict[str, Any]:
    document: dict[str, Any] = json.loads(agent._render_swml(call_id=call_id))
    return document


def _load(document: dict[str, Any]) -> tuple[LoadResult, AI]:
    result = load_text(json.dumps(document, indent=2), source="sdk.json")
    ai = result.document.find_ai()
    assert ai is not None
    return result, ai


def test_full_sdk_agent_document_loads() -> None:
    agent = _full_agent()
    document = _render(agent)
    _check_schema(document)
    result, ai = _load(document)

    # The SDK's own URLs point at localhost; those are the only warnings.
    assert result.warnings, "the SDK's localhost webhooks should be reported as private"
    assert all("private/loopback" in w.message and "localhost" in w.message for w in result.warnings)
    assert all(w.line is not None for w in result.warnings)
    clean = parse_document(document, source="sdk", allowed_hosts=["localhost"])
    assert clean.warnings == []

    assert [verb.name for verb in result.document.sections["main"]] == ["answer", "record_call", "ai"]
    assert ai.prompt.text is None and ai.prompt.pom is not None
    assert ai.prompt.temperature == 0.4 and ai.prompt.presence_penalty == 0.1
    assert ai.post_prompt is not None and ai.post_prompt.text == "Summarize the call as a JSON object."
    assert ai.post_prompt.top_p == 0.5
    assert ai.hints == ["Frank", "SignalWire"]
    (language,) = ai.languages
    assert (language.code, language.speech_fillers, language.function_fillers) == (
        "en-US",
        ["um"],
        ["one moment"],
    )
    assert ai.pronounce[0].with_ == "A P I"
    assert ai.params.attention_timeout == 15000
    assert ai.global_data == {"company": "Example Inc"}
    assert ai.SWAIG.native_functions == ["check_time", "wait_seconds"]
    assert ai.SWAIG.internal_fillers == {"check_time": {"en-US": ["Let me look at the clock"]}}
    assert ai.SWAIG.includes[0].functions == ["get_address"]

    functions = {function.function: function for function in ai.SWAIG.functions}
    assert set(functions) == {"get_weather", "summarize_conversation", "transfer_to", "lookup"}
    weather = functions["get_weather"]
    assert weather.description_text == "Get the weather for a city"
    assert weather.parameters_schema["properties"]["location"]["type"] == "string"
    assert weather.fillers == {"en-US": ["Checking the weather"]}
    assert weather.wait_file is not None and weather.wait_file.endswith("/hold.mp3")
    assert weather.web_hook_url is not None and "__token=" in weather.web_hook_url
    assert functions["lookup"].description_text == "Look up a caller"
    webhook = functions["lookup"].data_map.webhooks[0]  # type: ignore[union-attr]
    assert (webhook.method, webhook.required_args) == ("POST", ["q"])
    transfer_action = functions["transfer_to"].data_map.expressions[0].output.action[0]  # type: ignore[union-attr]
    assert transfer_action["transfer"] == "true"
    assert transfer_action["SWML"]["sections"]["main"] == [{"connect": {"to": "+15551234567"}}]


def test_pom_prompt_renders_like_the_sdk() -> None:
    document = _render(_full_agent())
    raw_pom = document["sections"]["main"][-1]["ai"]["prompt"]["pom"]
    _, ai = _load(document)
    assert ai.prompt.pom is not None
    text = render_pom(ai.prompt.pom)
    # What the SDK's POM library renders from the document it served.
    assert text == PromptObjectModel.from_json(copy.deepcopy(raw_pom)).render_markdown()
    assert text.startswith("## 1. Role\n\nYou are Frank, a transfer assistant.\n\n- Be brief\n")
    assert "## 2. Steps" in text and "1. Greet the caller\n2. Ask for the department" in text
    assert "### 2. Transfers\n" in text  # an unnumbered subsection shows its parent's number


def test_text_prompt_agent() -> None:
    agent = AgentBase(name="plain", route="/plain", use_pom=False, auto_answer=False)
    agent.set_prompt_text("You are a plain agent.")
    agent.set_post_prompt("Summarize.")
    document = _render(agent)
    _check_schema(document)
    result, ai = _load(document)
    assert [verb.name for verb in result.document.sections["main"]] == ["ai"]
    assert ai.prompt.text == "You are a plain agent."


def test_hook_functions_document() -> None:
    agent = AgentBase(name="hooks", route="/hooks")
    agent.prompt_add_section("Role", body="Be helpful.")
    agent.set_post_prompt("Summarize")
    agent.set_post_prompt_url("https://hooks.example.com/post")
    agent.set_web_hook_url("https://hooks.example.com/swaig")
    for name in ("startup_hook", "hangup_hook"):
        agent.register_swaig_function(
            {
                "function": name,
                "description": f"Called for {name}",
                "parameters": {"type": "object", "properties": {}},
                "web_hook_url": f"https://hooks.example.com/{name}",
            }
        )
    document = _render(agent)
    _check_schema(document)
    result, ai = _load(document)
    assert result.warnings == []
    assert [f.function for f in ai.SWAIG.functions] == ["startup_hook", "hangup_hook"]
    assert ai.SWAIG.functions[1].web_hook_url == "https://hooks.example.com/hangup_hook"
    assert ai.post_prompt_url == "https://hooks.example.com/post"
    assert render_pom(ai.prompt.pom or []) == "## Role\n\nBe helpful.\n"


@pytest.mark.parametrize("to_yaml", [False, True])
def test_sdk_document_as_yaml_or_json(to_yaml: bool) -> None:
    import yaml

    document = _render(_full_agent())
    text = yaml.safe_dump(document, sort_keys=False) if to_yaml else json.dumps(document)
    result = load_text(text, source="sdk.yaml" if to_yaml else "sdk.json")
    assert result.document.find_ai() is not None


def test_sdk_data_map_extras_are_not_reported() -> None:
    agent = AgentBase(name="extras", route="/extras")
    agent.prompt_add_section("Role", body="x")
    agent.set_web_hook_url("https://hooks.example.com/swaig")
    mapped = (
        DataMap("post_it")
        .description("Post something")
        .parameter("q", "string", "query")
        .webhook("POST", "https://api.example.com/post", form_param="payload")
        .body({"q": "${args.q}"})
        .output(SwaigFunctionResult("posted"))
        .expression(
            "${args.q}", r"^x$", SwaigFunctionResult("x"), nomatch_output=SwaigFunctionResult("not x")
        )
    )
    agent.register_swaig_function(mapped.to_swaig_function())
    document = _render(agent)
    function = document["sections"]["main"][-1]["ai"]["SWAIG"]["functions"][0]
    assert "nomatch-output" in function["data_map"]["expressions"][0]
    assert function["data_map"]["webhooks"][0]["form_param"] == "payload"
    result, _ = _load(document)
    assert result.warnings == []
    # ...while a field nobody documents still is.
    function["data_map"]["webhooks"][0]["bogus"] = 1
    (warning,) = parse_document(document, source="sdk").warnings
    assert warning.path.endswith("data_map.webhooks[0].bogus")


# ---------------------------------------------------------------- contexts and steps


def _contexts_agent() -> AgentBase:
    """A multi-step agent built with the SDK's ContextBuilder, as its users write them."""
    agent = AgentBase(name="pizza", route="/pizza", host="127.0.0.1", port=3000, basic_auth=("u", "p"))
    agent.manual_set_proxy_url("https://pizza.example.com")
    agent.prompt_add_section("Role", body="You are Franklin at Franklin's Pizza.")
    builder = agent.define_contexts()
    default = builder.add_context("default")
    default.add_step(
        "greeting",
        task="Greet the caller and ask for their order.",
        criteria="The caller said what they want.",
        functions="none",
        valid_steps=["take_order"],
    )
    order = default.add_step(
        "take_order", task="Take the order with add_pizza.", functions=["add_pizza"], valid_steps=["confirm"]
    )
    order.set_valid_contexts(["billing"])
    default.add_step("confirm").set_text("Read back the order and say goodbye.").set_end(True)
    billing = builder.add_context("billing")
    billing.set_isolated(True)
    billing.set_enter_fillers({"en-US": ["Billing, one moment."]})
    billing.add_step("invoices").set_text("Answer invoice questions.").set_valid_contexts(["default"])
    agent.define_tool(
        name="add_pizza",
        description="Add a pizza to the order",
        parameters={"kind": {"type": "string", "description": "the pizza"}},
        handler=_weather,
    )
    return agent


def test_sdk_contexts_document_validates_and_runs(tmp_path: Path) -> None:
    from callgate.scenario.runner import run_scenario_file

    document = _render(_contexts_agent())
    # No schema check here: the SDK's own schema rejects what its ContextBuilder writes (a step's
    # `functions: "none"`, `enter_fillers` as one object). callgate takes both, as SignalWire does.
    result, ai = _load(document)
    assert result.warnings == []
    assert ai.prompt.contexts is not None and list(ai.prompt.contexts) == ["default", "billing"]
    scenario = {
        "name": "SDK contexts agent",
        "agent": document,
        "llm": [
            {"text": "Franklin's Pizza, what would you like?"},
            {
                "match": "a pepperoni",
                "tool_calls": [{"name": "next_step", "arguments": {"step": "take_order"}}],
            },
            {
                "match": "Now in step 'take_order'",
                "tool_calls": [{"name": "add_pizza", "arguments": {"kind": "pepperoni"}}],
            },
            {
                "match": "Added one pepperoni",
                "tool_calls": [{"name": "next_step", "arguments": {"step": "confirm"}}],
            },
            {"match": "Now in step 'confirm'", "text": "One pepperoni, ready at six. Goodbye!"},
        ],
        "http": [
            {
                "method": "POST",
                "url": "https://pizza.example.com/pizza/swaig*",
                "json": {"response": "Added one pepperoni."},
            }
        ],
        "turns": [{"user": "I want a pepperoni."}],
        "expect": {
            "said": ["Franklin's Pizza", "ready at six. Goodbye!"],
            "ended": "assistant-ended-call",
            "functions": [{"name": "add_pizza", "arguments": {"kind": "pepperoni"}}],
        },
    }
    path = tmp_path / "sdk_contexts.yaml"
    path.write_text(json.dumps(scenario), encoding="utf-8")
    outcome = run_scenario_file(path)
    assert outcome.passed, "\n".join(outcome.all_failures) + (
        outcome.outcome.timeline.render() if outcome.outcome else ""
    )
