"""Bad documents (issue 10, item 11), against the real CLI and a misbehaving loopback server: a
document URL that drips or never ends, documents too large or too deeply nested, YAML aliases that
explode or refer to themselves, and syntax errors told where the broken construct began.

Each case asserts the command ends (every process has a timeout), with a clear message and no
traceback; `validate` refuses exactly what the runtime cannot run — at the limit it accepts, and
`chat` and `test` run the document and the record is saved."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from callgate.swml.errors import DocumentError, DocumentLimitError
from callgate.swml.limits import MAX_DEPTH, MAX_DOCUMENT_BYTES
from callgate.swml.loader import fetch_document, load_text

from .misbehaving import MisbehavingServer
from .security_support import ModelThread, Receiver, chat, run_cli

SECRET = "s3cret-Pa55word"
EXIT_REFUSED = 2


def _clean(result: Any) -> str:
    """The command's whole output, checked to hold no traceback and no secret."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert SECRET not in output, output
    return output


def nested(levels: int, leaf: Any = "deep") -> Any:
    """`levels` objects one inside the other around `leaf`."""
    value = leaf
    for _ in range(levels):
        value = {"k": value}
    return value


def deep_agent(depth: int) -> dict[str, Any]:
    """A runnable agent whose deepest value sits `depth` levels down (the document is level 1):
    in `global_data`, which is copied into every call and its record. A function's `meta_data`
    and a data_map action run at the call are nested too, less deeply."""
    # document(1) sections(2) main(3) [0](4) ai(5) global_data(6 ...)
    return {
        "version": "1.0.0",
        "sections": {
            "main": [
                {
                    "ai": {
                        "prompt": {"text": "You are Frank. ${global_data.k}"},
                        "post_prompt": {"text": "Summarize the call."},
                        "global_data": nested(depth - 5),
                        "SWAIG": {
                            "functions": [
                                {
                                    "function": "lookup",
                                    "description": "Look it up",
                                    "parameters": {"type": "object", "properties": {}},
                                    "meta_data": nested(depth - 9),
                                    "data_map": {
                                        "output": {
                                            "response": "found",
                                            "action": [{"set_global_data": nested(depth - 14, "set")}],
                                        }
                                    },
                                }
                            ]
                        },
                    }
                }
            ]
        },
    }


def _yaml_nested(levels: int) -> str:
    """`levels` nested block mappings under `global_data`, in YAML (indentation, not brackets)."""
    lines = ["version: 1.0.0", "sections:", "  main:", "    - ai:", "        prompt: {text: hi}"]
    lines.append("        global_data:")
    indent = "          "
    for _ in range(levels - 1):
        lines.append(f"{indent}k:")
        indent += "  "
    lines.append(f"{indent}k: deep")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- fetching by URL


def test_validate_gives_up_on_a_dripping_url_within_its_deadline() -> None:
    with MisbehavingServer(drip_every=0.5) as server:
        url = server.url("/drip", userinfo=f"val:{SECRET}")
        result = run_cli(["validate", url, "--timeout", "3"], timeout=90)
    output = _clean(result)
    assert result.returncode == EXIT_REFUSED, output
    assert "no complete answer within 3 s" in output
    assert f"http://val:***@127.0.0.1:{server.port}/drip" in output


def test_chat_gives_up_on_a_dripping_url() -> None:
    with MisbehavingServer(drip_every=1.0) as server, ModelThread({"agent": []}) as model:
        result = chat(server.url("/drip", userinfo=f"val:{SECRET}"), [], model.base_url("agent"), Path("x"))
    output = _clean(result)
    assert result.returncode == 1, output
    assert "no complete answer within 10 s" in output
    assert server.hits["/drip"] == 1


def test_an_endless_body_stops_at_the_size_cap() -> None:
    with MisbehavingServer() as server:
        result = run_cli(["validate", server.url("/endless"), "--json"], timeout=90)
    _clean(result)
    assert result.returncode == EXIT_REFUSED
    (error,) = json.loads(result.stdout)["errors"]
    assert f"larger than the {MAX_DOCUMENT_BYTES}-byte limit" in error["message"]


@pytest.mark.parametrize(("path", "expected"), [("/drip", "within 2 s"), ("/endless", "byte limit")])
def test_fetch_document_in_a_running_call_is_bounded_too(path: str, expected: str) -> None:
    """The async fetch `serve` and the assistant hand-off use, with the call's own HTTP client."""

    async def fetch(url: str) -> None:
        async with httpx.AsyncClient() as client:
            await fetch_document(url, timeout=2, client=client)

    with MisbehavingServer(drip_every=0.2) as server, pytest.raises(DocumentLimitError) as info:
        asyncio.run(fetch(server.url(path, userinfo=f"u:{SECRET}")))
    (error,) = info.value.errors
    assert expected in error.message and SECRET not in str(error)
    assert error.source == f"http://u:***@127.0.0.1:{server.port}{path}"


def _big_document() -> str:
    """A 20 MB structured document (the size that took 122 s and 2.6 GB to load)."""
    rows = [{"id": i, "name": f"row {i}", "tags": ["a", "b", "c"]} for i in range(400_000)]
    document = {"sections": {"main": [{"ai": {"prompt": {"text": "hi"}, "global_data": {"rows": rows}}}]}}
    return json.dumps(document)


@pytest.mark.parametrize("where", ["file", "url"])
def test_a_20_mb_document_is_refused_before_parsing(tmp_path: Path, where: str) -> None:
    text = _big_document()
    assert len(text) > 20 * MAX_DOCUMENT_BYTES
    if where == "file":
        path = tmp_path / "big.json"
        path.write_text(text)
        result = run_cli(["validate", str(path)], timeout=60)
    else:
        with MisbehavingServer({"big": text}) as server:
            result = run_cli(["validate", server.url("/doc/big")], timeout=60)
    output = _clean(result)
    assert result.returncode == EXIT_REFUSED, output
    assert f"larger than the {MAX_DOCUMENT_BYTES}-byte limit" in output


# ---------------------------------------------------------------- nesting depth


@pytest.mark.parametrize("form", ["json", "yaml"])
def test_validate_refuses_one_level_past_the_depth_limit_with_the_path(tmp_path: Path, form: str) -> None:
    at_limit, past = tmp_path / f"at.{form}", tmp_path / f"past.{form}"
    if form == "json":
        at_limit.write_text(json.dumps(deep_agent(MAX_DEPTH)))
        past.write_text(json.dumps(deep_agent(MAX_DEPTH + 1)))
    else:
        at_limit.write_text(_yaml_nested(MAX_DEPTH - 5))
        past.write_text(_yaml_nested(MAX_DEPTH - 4))
    accepted = run_cli(["validate", str(at_limit)])
    assert accepted.returncode == 0, _clean(accepted)
    refused = run_cli(["validate", str(past), "--json"])
    _clean(refused)
    assert refused.returncode == EXIT_REFUSED
    (error,) = json.loads(refused.stdout)["errors"]
    assert error["message"].startswith(
        f"nested more than {MAX_DEPTH} levels deep at sections.main[0].ai.global_data"
    )
    assert error["path"].startswith("sections.main[0].ai.global_data.k.k")
    if form == "yaml":
        # global_data's mapping (level 6) begins at line 7, so level 65 begins at line 66.
        assert error["line"] == MAX_DEPTH + 2


@pytest.mark.parametrize("text", [json.dumps(deep_agent(500)), "[" * 100_000 + "]" * 100_000])
def test_absurdly_deep_json_is_refused_not_crashed(tmp_path: Path, text: str) -> None:
    path = tmp_path / "deep.json"
    path.write_text(text)
    result = run_cli(["validate", str(path)])
    output = _clean(result)
    assert result.returncode == EXIT_REFUSED, output
    assert f"nested more than {MAX_DEPTH} levels deep" in output


def test_a_document_at_the_depth_limit_runs_in_chat_and_its_record_is_saved(tmp_path: Path) -> None:
    agent = tmp_path / "deep.json"
    agent.write_text(json.dumps(deep_agent(MAX_DEPTH)))
    store = tmp_path / "calls.db"
    scripts = {
        "agent": [
            {"tool_calls": [{"name": "lookup", "arguments": {}}]},
            {"text": 'Found it. <imsagent_hangup endword="Bye."/>'},
            {"text": "A summary."},  # the post_prompt request (one model URL for every role)
        ]
    }
    with ModelThread(scripts) as model:
        result = chat(agent, ["hello"], model.base_url("agent"), store)
    output = _clean(result)
    assert result.returncode == 0, output
    assert "Found it." in output and "call recorded" in output
    listed = run_cli(["calls", "list", "--json"], env={"CALLGATE_DB": str(store)})
    (call,) = json.loads(listed.stdout)
    assert call["ended_reason"] == "assistant-ended-call"
    exported = run_cli(["calls", "export"], env={"CALLGATE_DB": str(store)})
    assert exported.returncode == 0, _clean(exported)
    # The deep values made it into the record: the prompt rendered from global_data, and the
    # global_data the function's action set during the call.
    assert '"deep"' in exported.stdout and '"set"' in exported.stdout


def test_a_document_at_the_depth_limit_runs_in_callgate_test(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text(json.dumps(deep_agent(MAX_DEPTH)))
    (tmp_path / "past.json").write_text(json.dumps(deep_agent(MAX_DEPTH + 1)))
    scenario = textwrap.dedent(
        """\
        agent: {agent}
        llm:
          - tool_calls: [{{name: lookup, arguments: {{}}}}]
          - text: 'Found it. <imsagent_hangup endword="Bye."/>'
        turns: [{{user: hello}}]
        expect:
          said: ["Found it.", "Bye."]
          functions: [{{name: lookup}}]
          ended: assistant-ended-call
        """
    )
    (tmp_path / "at_limit.yaml").write_text(scenario.format(agent="deep.json"))
    passed = run_cli(["test", str(tmp_path / "at_limit.yaml")], timeout=120)
    assert passed.returncode == 0, _clean(passed)
    (tmp_path / "past_limit.yaml").write_text(scenario.format(agent="past.json"))
    refused = run_cli(["test", str(tmp_path / "past_limit.yaml")], timeout=120)
    output = _clean(refused)
    assert refused.returncode == EXIT_REFUSED, output
    assert f"nested more than {MAX_DEPTH} levels deep" in output


def test_nesting_past_the_limit_from_a_webhook_or_the_model_is_a_bad_answer_not_a_crash(
    tmp_path: Path,
) -> None:
    """The same limit holds for JSON that arrives during the call: a webhook answer and the model's
    function arguments nested 500 deep are refused as unusable; the call goes on and is recorded."""
    with Receiver({"/deep": {"response": "ok", "action": [{"set_global_data": nested(500)}]}}) as hooks:
        agent = tmp_path / "agent.json"
        function = {"description": "d", "parameters": {"type": "object", "properties": {}}}
        ai = {
            "prompt": {"text": "You are Frank."},
            "params": {"swaig_allow_private_urls": True},
            "SWAIG": {"functions": [{"function": "lookup", "web_hook_url": hooks.url + "/deep", **function}]},
        }
        agent.write_text(json.dumps({"sections": {"main": [{"ai": ai}]}}))
        scripts = {
            "agent": [
                {"tool_calls": [{"name": "lookup", "arguments": nested(500)}]},
                {"text": 'Sorry. <imsagent_hangup endword="Bye."/>'},
                {"text": "A summary."},
            ]
        }
        store = tmp_path / "calls.db"
        with ModelThread(scripts) as model:
            result = chat(agent, ["hello"], model.base_url("agent"), store)
    output = _clean(result)
    assert result.returncode == 0, output
    assert "Sorry." in output and "call recorded" in output
    assert len(hooks.requests) == 1  # the function ran (with no usable arguments)
    exported = run_cli(["calls", "export"], env={"CALLGATE_DB": str(store)})
    assert exported.returncode == 0, _clean(exported)
    assert f"nested more than {MAX_DEPTH} levels deep" in exported.stdout  # the webhook's failure


# ---------------------------------------------------------------- YAML aliases


def test_an_alias_placed_deep_counts_its_own_depth() -> None:
    # Each anchor is shallow; placed inside one another through aliases they nest far too deep.
    lines = ["a0: &a0 {k: v}"]
    for level in range(1, 40):
        lines.append(f"a{level}: &a{level} {{k: {{k: *a{level - 1}}}}}")
    lines.append("sections: {main: [{ai: {prompt: {text: hi}, global_data: *a39}}]}")
    with pytest.raises(DocumentLimitError) as info:
        load_text("\n".join(lines) + "\n", source="aliases.yaml")
    assert f"nested more than {MAX_DEPTH} levels deep" in str(info.value)


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("sections:\n  main:\n    - ai:\n        global_data: &loop {again: *loop}\n")
    result = run_cli(["validate", str(path)])
    output = _clean(result)
    assert result.returncode == EXIT_REFUSED, output
    assert "a YAML alias refers to a value that contains it" in output
    assert f"{path}:4:" in output


# ---------------------------------------------------------------- syntax errors: where they began


@pytest.mark.parametrize(
    ("text", "began"),
    [
        # An unclosed quote at line 3, noticed at the end of the text (line 9).
        ('version: 1.0.0\nsections:\n  main: ["answer, hangup]\n#\n#\n#\n#\n#\nx: 1\n', "line 3, column 10"),
        # An unclosed bracket at line 3, noticed at line 9.
        ("version: 1.0.0\nsections:\n  main: [answer,\n   hangup,\n\n\n\n\n  other: 1\n", "line 3, column 9"),
        # JSON: an object opened at line 3 and never closed.
        (
            '{"version": "1.0.0",\n "sections": {\n  "main": [{"answer": {}\n\n\n\n\n ]}}\n',
            "line 3, column 12",
        ),
    ],
)
def test_syntax_errors_name_the_line_where_the_broken_construct_began(text: str, began: str) -> None:
    with pytest.raises(DocumentError) as info:
        load_text(text, source="broken")
    (error,) = info.value.errors
    assert f"began at {began}" in error.message, error.message
    assert error.line is not None and error.line > 3  # and the line where it was noticed


def test_validate_prints_where_an_unclosed_quote_began(tmp_path: Path) -> None:
    path = tmp_path / "quote.yaml"
    path.write_text('version: 1.0.0\nsections:\n  main:\n    - play: {url: "say:hi}\n    - hangup\n\n')
    result = run_cli(["validate", str(path)])
    output = _clean(result)
    assert result.returncode == 1, output
    assert "quoted scalar that began at line 4" in output
