"""Webhook URLs: the model's arguments are encoded, so they cannot reshape the URL (DESIGN §7)."""

from __future__ import annotations

import httpx
from hypothesis import given
from hypothesis import strategies as st

from callgate.template import expand, expand_url


def test_arguments_cannot_change_path_query_or_fragment() -> None:
    ctx = {"args": {"city": "../../admin/drop?x="}, "input": {"args": {"city": "a b#frag"}}}
    url = expand_url("https://api.example.com/v1/weather/${args.city}/today?key=K", ctx)
    parsed = httpx.URL(url)
    assert parsed.path.startswith("/v1/weather/")
    assert parsed.params["key"] == "K"
    url = expand_url("https://api.example.com/w?city=${input.args.city}&key=K", ctx)
    assert httpx.URL(url).params == httpx.QueryParams({"city": "a b#frag", "key": "K"})
    assert httpx.URL(url).fragment == ""


def test_enc_is_applied_once_and_other_sources_are_untouched() -> None:
    ctx = {"args": {"target": "sales team"}, "global_data": {"base": "https://api.example.com/v2"}}
    assert expand_url("${global_data.base}/find?name=${enc:args.target}", ctx) == (
        "https://api.example.com/v2/find?name=sales%20team"
    )
    assert expand_url("${global_data.base}/find?name=${args.target}", ctx) == (
        "https://api.example.com/v2/find?name=sales%20team"
    )
    # Plain text expansion is unchanged (SignalWire's semantics outside URLs).
    assert expand("name=${args.target}", ctx) == "name=sales team"


def test_nested_lookups_keyed_by_arguments_still_work() -> None:
    ctx = {"args": {"dept": "Sales"}, "meta_data": {"urls": {"sales": "https://crm.example.com/s"}}}
    assert expand_url("${meta_data.urls.${lc:args.dept}}?q=1", ctx) == "https://crm.example.com/s?q=1"


@given(st.text(max_size=40))
def test_any_argument_stays_inside_its_query_value(value: str) -> None:
    url = expand_url("https://api.example.com/search?q=${args.q}&key=K", {"args": {"q": value}})
    parsed = httpx.URL(url)
    assert parsed.host == "api.example.com"
    assert parsed.path == "/search"
    assert parsed.params.get("key") == "K"
