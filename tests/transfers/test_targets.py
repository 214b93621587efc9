"""Which destination a builtin transfer function picks, and the tool the model is offered."""

from __future__ import annotations

from typing import Any

import pytest

from callgate.agent.transfer_targets import Target, choose_target, is_dynamic, tool_schema
from callgate.swaig.schema import openai_tool
from callgate.swml.models import Function

LIST = Function.model_validate(
    {
        "function": "transfer_call",
        "builtin": "transfer",
        "transfer": {
            "destinations": [
                {
                    "name": "sales",
                    "number": "+15550002222",
                    "message": "To sales.",
                    "callerId": "+15559870000",
                },
                {"name": "support", "description": "tech help", "sipUri": "sip:support@pbx.example.com"},
                "+15550004444",
                {"type": "assistant", "assistantName": "billing", "message": "Bea will help."},
                {"name": "broken"},
            ]
        },
    }
)
TABLE = Function.model_validate(
    {
        "function": "transfer",
        "builtin": "transfer",
        "meta_data": {"table": {"Sales": "+15550002222", "n": 5550003333}},
    }
)


@pytest.mark.parametrize(
    ("function", "arguments", "expected"),
    [
        (
            LIST,
            {"destination": "sales"},
            Target("+15550002222", "document", "+15559870000", None, "To sales."),
        ),
        (LIST, {"destination": "SUPPORT"}, Target("sip:support@pbx.example.com", "document")),
        (LIST, {"target": "tech help"}, Target("sip:support@pbx.example.com", "document")),
        (LIST, {"to": "+1 555 000 4444"}, Target("+15550004444", "document")),
        (LIST, {"destination": "billing"}, Target("assistant:billing", "document", message="Bea will help.")),
        (LIST, {}, Target("+15550002222", "document", "+15559870000", None, "To sales.")),
        (LIST, {"destination": "+19005550199"}, Target("+19005550199", "model")),
        (LIST, {"destination": "broken"}, None),  # an entry without a number or URI
        (TABLE, {"target": "sales"}, Target("+15550002222", "document")),
        (TABLE, {"target": "n"}, Target("5550003333", "document")),
        (TABLE, {"target": "nowhere"}, Target("nowhere", "model")),
        (TABLE, {}, None),
        (None, {"number": 12345}, Target("12345", "model")),
        (None, {"destination": True}, None),
    ],
)
def test_choose_target(function: Function | None, arguments: dict[str, Any], expected: Target | None) -> None:
    assert choose_target(function, arguments) == expected


def test_dynamic_only_with_an_empty_list() -> None:
    dynamic = Function.model_validate(
        {"function": "t", "builtin": "transfer", "transfer": {"destinations": []}}
    )
    assert is_dynamic(dynamic)
    assert not is_dynamic(LIST)
    assert not is_dynamic(TABLE)


def test_tool_schema_offers_the_names() -> None:
    tool = tool_schema(LIST, openai_tool(LIST.function, "", LIST.parameters_schema))
    parameters = tool["function"]["parameters"]
    assert parameters["required"] == ["destination"]
    assert parameters["properties"]["destination"]["enum"] == [
        "sales",
        "support",
        "+15550004444",
        "billing",
        "broken",
    ]
    assert "support: tech help" in parameters["properties"]["destination"]["description"]


def test_tool_schema_keeps_the_documents_own_parameters_and_hides_meta_data() -> None:
    own = Function.model_validate(
        {
            "function": "t",
            "builtin": "transfer",
            "parameters": {"type": "object", "properties": {"who": {"type": "string"}}},
            "transfer": {"destinations": ["+15550002222"]},
        }
    )
    original = openai_tool(own.function, "", own.parameters_schema)
    assert tool_schema(own, original) == original
    table_tool = openai_tool(TABLE.function, "", TABLE.parameters_schema)
    assert tool_schema(TABLE, table_tool) == table_tool
    assert "+15550002222" not in str(table_tool)
