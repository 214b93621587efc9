"""Every document in examples/agents/ loads without errors; the seed's examples keep their meaning."""

from __future__ import annotations

from pathlib import Path

import pytest

from callgate.swml import AI, load_document
from callgate.swml.patterns import compile_pattern

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "agents"
FILES = sorted(EXAMPLES.glob("*.yaml")) + sorted(EXAMPLES.glob("*.json"))


def _ai(name: str) -> AI:
    ai = load_document(EXAMPLES / name).document.find_ai()
    assert ai is not None
    return ai


def test_examples_exist() -> None:
    names = {path.name for path in FILES}
    assert {
        "voicemail.yaml",
        "declaring_functions.yaml",
        "swml_data_map_transfer.yaml",
        "swml_webhook_transfer.yaml",
        "data_map_webhook_transfer.yaml",
        "expressions_transfer.yaml",
        "joke_transfer.yaml",
        "blabbermouth.yaml",
        "star_context_switch.yaml",
    } <= names


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_example_loads_without_errors(path: Path) -> None:
    result = load_document(path)
    assert result.document.find_ai() is not None
    assert result.document.source == str(path)


def test_voicemail_label_and_prompt_settings() -> None:
    document = load_document(EXAMPLES / "voicemail.yaml").document
    (verb,) = document.sections["main"]
    assert (verb.name, verb.label, verb.path) == ("ai", "ai", "sections.main[0].ai")
    assert isinstance(verb.args, AI)
    assert verb.args.prompt.temperature == 0.2
    assert verb.args.prompt.confidence == 0.6
    assert verb.args.post_prompt is not None and "contact_info" in (verb.args.post_prompt.text or "")


def test_declaring_functions_includes_and_defaults() -> None:
    ai = _ai("declaring_functions.yaml")
    (include,) = ai.SWAIG.includes
    assert (include.url, include.functions, include.user, include.password) == (
        "https://example.com/functions",
        ["get_phone_number", "get_address"],
        "me",
        "secret",
    )
    assert ai.SWAIG.defaults.web_hook_auth_password == "secret"
    (function,) = ai.SWAIG.functions
    assert function.description_text.startswith("To determine what the current weather")
    assert function.parameters_schema["properties"]["location"]["type"] == "string"


def test_joke_transfer_starts_inactive_and_toggles() -> None:
    ai = _ai("joke_transfer.yaml")
    transfer, joke = ai.SWAIG.functions
    assert transfer.active is False
    assert transfer.meta_data == {"table": {"support": "+1XXXXXXXXXX", "sales": "+1YYYYYYYYYY"}}
    assert compile_pattern(transfer.data_map.expressions[0].pattern).fullmatch("sales")  # type: ignore[union-attr]
    output = joke.data_map.webhooks[0].output  # type: ignore[union-attr]
    assert output is not None
    assert output.action == [{"toggle_functions": [{"active": "true", "function": "transfer"}]}]


def test_data_map_webhook_transfer_keeps_swml_and_stop_in_one_action() -> None:
    ai = _ai("data_map_webhook_transfer.yaml")
    webhook = ai.SWAIG.functions[0].data_map.webhooks[0]  # type: ignore[union-attr]
    assert webhook.url == "https://example.com/v1/destination?name=${enc:args.target}"
    assert webhook.output is not None
    (action,) = webhook.output.action
    assert list(action) == ["SWML", "stop"]


def test_blabbermouth_meta_data_actions() -> None:
    ai = _ai("blabbermouth.yaml")
    store, lookup = ai.SWAIG.functions
    assert store.meta_data_token == lookup.meta_data_token == "example_token"
    assert lookup.active is False
    actions = store.data_map.webhooks[0].output.action  # type: ignore[union-attr]
    assert actions[0] == {"set_meta_data": {"${lc:input.args.name}": "${Records[0].secret}"}}
    assert ai.post_prompt is not None and ai.post_prompt.top_p == 0.1


def test_star_context_switch_patterns() -> None:
    ai = _ai("star_context_switch.yaml")
    expressions = ai.SWAIG.functions[0].data_map.expressions  # type: ignore[union-attr]
    assert [e.pattern for e in expressions] == ["/trek/i", "/wars/i", ".*"]
    assert compile_pattern("/trek/i").search("star TREK")
    switch = expressions[0].output.action[1]["context_switch"]
    assert switch["consolidate"] is False and "Leonard" in switch["system_prompt"]
    assert ai.hints == ["StarWars", "StarTrek", "topic"]
