"""`callgate validate FILE|URL [--json]`: prints errors and warnings, exit 1 on errors only."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from callgate.cli import app

ServeApp = Callable[[Any], AbstractContextManager[str]]
ROOT = Path(__file__).resolve().parents[2]
CALLGATE = Path(sys.executable).parent / "callgate"
runner = CliRunner()

WARNINGS_ONLY = """\
sections:
  main:
    - ai:
        prompt:
          text: hi
          temprature: 0.5
"""

BROKEN = """\
sections:
  main:
    - ai:
        prompt:
          text: hi
        SWAIG:
          functions:
            - function: f
              description: f
              data_map:
                expressions:
                  - {string: x, pattern: "([a-z]", output: {response: ok}}
"""


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_valid_example_exits_zero() -> None:
    result = runner.invoke(app, ["validate", str(ROOT / "examples/agents/joke_transfer.yaml")])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output and "invalid" not in result.output
    assert "main: ai (2 functions)" in result.output


def test_warnings_are_printed_and_exit_zero(tmp_path: Path) -> None:
    path = _write(tmp_path, "warn.yaml", WARNINGS_ONLY)
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 0, result.output
    assert f"warning {path}:6: sections.main[0].ai.prompt.temprature: unknown field" in result.output
    assert "1 warning" in result.output


def test_errors_are_printed_and_exit_one(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.yaml", BROKEN)
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 1
    expected = f"error {path}:12: sections.main[0].ai.SWAIG.functions[0].data_map.expressions[0].pattern:"
    assert expected in result.output
    assert "invalid regular expression" in result.output
    assert f"invalid {path}: 1 error, 0 warnings" in result.output


def test_json_output(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.yaml", BROKEN)
    result = runner.invoke(app, ["validate", path, "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["valid"] is False and report["source"] == path and report["warnings"] == []
    (error,) = report["errors"]
    assert error["line"] == 12
    assert error["path"].endswith("expressions[0].pattern")

    ok = runner.invoke(app, ["validate", _write(tmp_path, "warn.yaml", WARNINGS_ONLY), "--json"])
    assert ok.exit_code == 0
    report = json.loads(ok.output)
    assert report["valid"] is True and report["errors"] == []
    assert [w["path"] for w in report["warnings"]] == ["sections.main[0].ai.prompt.temprature"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("sections:\n  main:\n    - answer\n   - hangup\n", ":4: invalid YAML"),
        ("version: 1.0.0\n", "missing `sections`"),
        ("sections:\n  main: {answer: {}}\n", "must be a list of verbs"),
    ],
)
def test_bad_documents_exit_one(tmp_path: Path, text: str, needle: str) -> None:
    result = runner.invoke(app, ["validate", _write(tmp_path, "bad.yaml", text)])
    assert result.exit_code == 1
    assert needle in result.output


def test_missing_file_exits_one(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert "cannot read the file" in result.output


def test_console_script(tmp_path: Path) -> None:
    good = subprocess.run(
        [str(CALLGATE), "validate", str(ROOT / "examples/agents/voicemail.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    assert "valid" in good.stdout
    bad = subprocess.run(
        [str(CALLGATE), "validate", _write(tmp_path, "broken.yaml", BROKEN), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 1, bad.stderr
    assert json.loads(bad.stdout)["errors"][0]["line"] == 12


def _served_document(base: str) -> str:
    # Webhooks on the same server: validate must not call any of them.
    return f"""\
sections:
  main:
    - ai:
        prompt: {{text: hi}}
        SWAIG:
          includes:
            - {{url: "{base}/include", functions: [x]}}
          functions:
            - function: remote
              description: remote
              web_hook_url: {base}/hook
            - function: mapped
              description: mapped
              data_map:
                webhooks:
                  - {{url: "{base}/datamap", output: {{response: ok}}}}
"""


def test_validate_url_posts_once_with_basic_auth(loopback: ServeApp) -> None:
    seen: list[tuple[str, str | None, Any]] = []

    async def anything(request: Request) -> Response:
        body = await request.body()
        seen.append((request.url.path, request.headers.get("authorization"), json.loads(body or b"null")))
        if request.url.path != "/agent":
            return PlainTextResponse("should not be called", status_code=500)
        base = f"{request.url.scheme}://{request.url.netloc}"
        return PlainTextResponse(_served_document(base), media_type="text/yaml")

    server = Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])
    with loopback(server) as base:
        url = base.replace("http://", "http://val:s3cret@") + "/agent"
        result = subprocess.run(
            [str(CALLGATE), "validate", url, "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is True and report["warnings"] == []
    assert "s3cret" not in result.stdout and "***" in report["source"]
    ((path, auth, body),) = seen
    assert path == "/agent"
    assert auth == "Basic " + base64.b64encode(b"val:s3cret").decode()
    assert set(body) == {"call", "vars", "envs", "params"}
    assert body["call"]["call_id"] and body["call"]["direction"] == "inbound"
    assert body["call"]["type"] == "phone"


def test_validate_url_error_exits_one(loopback: ServeApp) -> None:
    async def refuse(request: Request) -> Response:
        return PlainTextResponse("nope", status_code=404)

    with loopback(Starlette(routes=[Route("/{path:path}", refuse, methods=["POST"])])) as base:
        result = runner.invoke(app, ["validate", base + "/missing"])
    assert result.exit_code == 1
    assert "HTTP 404" in result.output
