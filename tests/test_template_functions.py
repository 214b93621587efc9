"""SignalWire's template functions beyond lc/uc/enc: fmt_ph, and enc: in a URL's path."""

from __future__ import annotations

import httpx
import pytest

from callgate.template import expand, expand_url


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${fmt_ph:args.n}", "(234) 567-8901"),
        ("${fmt_ph:national:args.n}", "(234) 567-8901"),
        ("${fmt_ph:international:args.n}", "+12345678901"),
        ("${fmt_ph:args.local}", "(234) 567-8901"),  # no country code: North American
        ("${fmt_ph:international:args.local}", "+12345678901"),
        ("${fmt_ph:args.uk}", "020 7679 2000"),
        ("${fmt_ph:international:args.uk}", "+442076792000"),
        ("${fmt_ph:args.word}", "sales"),  # not a number: left as it is
        ("${fmt_ph:args.missing}", ""),
        ("${enc:fmt_ph:args.n}", "%28234%29%20567-8901"),  # formatting first, then encoding
        ("Call ${fmt_ph:caller_id_num} back", "Call (555) 123-0000 back"),
    ],
)
def test_fmt_ph(template: str, expected: str) -> None:
    ctx = {
        "args": {"n": "+12345678901", "local": "234-567-8901", "uk": "+44 20 7679 2000", "word": "sales"},
        "caller_id_num": "+15551230000",
    }
    assert expand(template, ctx) == expected


def test_fmt_ph_keeps_nothing_typed() -> None:
    from callgate.template import expand_value

    assert expand_value("${fmt_ph:n}", {"n": 12345678901}) == "(234) 567-8901"


def test_enc_in_the_path_leaves_slash_alone_but_never_a_dot_segment() -> None:
    ctx = {"args": {"path": "reports/2024 q1", "up": "../../admin", "q": "a/b c"}}
    assert expand_url("https://api.example.com/files/${enc:args.path}?q=${enc:args.q}", ctx) == (
        "https://api.example.com/files/reports/2024%20q1?q=a%2Fb%20c"
    )
    url = expand_url("https://api.example.com/files/${enc:args.up}/x", ctx)
    assert url == "https://api.example.com/files/%2E%2E/%2E%2E/admin/x"
    assert httpx.URL(url).path.startswith("/files/")
    # Outside URLs enc: still encodes every reserved character.
    assert expand("${enc:args.path}", ctx) == "reports%2F2024%20q1"


def test_without_enc_model_arguments_are_still_fully_encoded_in_the_path() -> None:
    ctx = {"args": {"path": "a/b"}}
    assert expand_url("https://api.example.com/${args.path}", ctx) == "https://api.example.com/a%2Fb"


def test_a_base_url_with_its_own_query_ends_the_path_part() -> None:
    ctx = {"base": "https://api.example.com/s?x=1", "args": {"q": "a/b"}}
    assert expand_url("${base}&q=${enc:args.q}", ctx) == "https://api.example.com/s?x=1&q=a%2Fb"
