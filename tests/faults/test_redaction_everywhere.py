"""Secret spellings that got past `callgate.redact` (docs/security.md), each fixed:

- a URL password holding an unencoded `?` or `#` (`https://bob:p?ss@host`): the authority ended at
  the `?`, so nothing was masked — and `calls show` / `calls export` printed it;
- a JSON string value with an escaped quote (`"password": "a\\"b"`): only up to the escape;
- `?key=` / `&auth=` query parameters (Google-style API keys) and bare `sk-…` API keys;
- tracebacks: an uncaught exception, a logged one (`log.exception`, the JSON logs of `serve`) and
  the JSON logs' extra fields printed the exception's text, URL passwords included;
- an API key echoed back by an endpoint (`HTTP 401: bad key <OPENAI_API_KEY>`) was printed by
  `chat` and stored in the record's timeline: the process's secret environment values are masked
  wherever they appear;
- `callgate test` printed a URL's `?token=` / `?key=` in its failure lines (`no stub for POST …`)
  and in the JSON report (failures, recorded requests and their bodies);
- httpx's `Invalid port: '<password>'` for `http://user:pa55?x@host/` (the password parsed as a
  port) in guard refusals and report errors; `calls deliver` crashed on such a URL.
"""

from __future__ import annotations

import io
import json
import logging
import string
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callgate.records.model import CallRecord
from callgate.records.store import NewReport, open_store
from callgate.redact import install_log_redaction, install_traceback_redaction, redact, register_env_secrets
from callgate.runtime.logs import JsonFormatter

from .security_support import closed_port, run_cli

SECRET = "Zq9s3cretPa55"

# What a password may hold unencoded and still sit inside one URL-looking run of text.
_PASSWORD_CHARS = string.ascii_letters + string.digits + "?#/:!$&()*+,;=%-._~"


@settings(max_examples=300, deadline=None)
@given(tail=st.text(alphabet=_PASSWORD_CHARS, max_size=12), path=st.sampled_from(["", "/", "/x", "/x?y=1"]))
def test_property_a_url_password_is_masked_whatever_it_holds(tail: str, path: str) -> None:
    password = SECRET + tail
    for scheme in ("https", "postgresql", "redis"):
        text = f"failed: {scheme}://bob:{password}@host.example.com{path} (timeout)"
        assert SECRET not in redact(text), text


@settings(max_examples=200, deadline=None)
@given(tail=st.text(max_size=12))
def test_property_a_json_secret_value_is_masked_with_escapes_inside(tail: str) -> None:
    for key in ("password", "api_key", "auth_token", "client_secret"):
        text = json.dumps({key: SECRET + tail, "next": "visible"})
        cleaned = redact(text)
        assert SECRET not in cleaned and "visible" in cleaned, cleaned


def test_query_keys_and_bare_api_keys_are_masked() -> None:
    for text in (
        f"GET https://maps.example.com/geo?key={SECRET}&q=1",
        f"GET https://hooks.example.com/x?a=1&auth={SECRET}",
        f"model said: Incorrect API key provided: sk-proj-{SECRET}abcdef",
        f"OPENAI_API_KEY is sk-{SECRET}0123456789",
    ):
        assert SECRET not in redact(text), text
    # Ordinary words are left alone: a key in prose, idempotency keys, e-mail addresses in queries.
    for text in ("press the key: 5", "idempotency_key=abc", "https://h.example.com/p?email=a@b.com"):
        assert redact(text) == text


def test_calls_commands_never_print_a_password_with_query_characters(tmp_path: Path) -> None:
    store_path = tmp_path / "calls.db"
    port = closed_port()
    urls = {
        "question": f"http://reporter:{SECRET}?x@127.0.0.1:{port}/report",
        "hash": f"http://reporter:{SECRET}#x@127.0.0.1:{port}/report",
        "key": f"http://127.0.0.1:{port}/report?key={SECRET}",
        "auth": f"http://127.0.0.1:{port}/report?a=1&auth={SECRET}",
    }
    with open_store(str(store_path)) as store:
        for name, url in urls.items():
            report = NewReport(f"key-{name}", url, {"call_id": name})
            store.save_call(CallRecord(call_id=name), report, now=0.0)
    env = {"CALLGATE_DB": str(store_path)}
    outputs = [
        run_cli(["calls", "deliver", "--no-wait"], env=env),
        run_cli(["calls", "list", "--json"], env=env),
        run_cli(["calls", "export"], env=env),
        *(run_cli(["calls", "show", name], env=env) for name in urls),
        *(run_cli(["calls", "show", name, "--json"], env=env) for name in urls),
    ]
    for result in outputs:
        assert SECRET not in result.stdout + result.stderr, result.args
        assert "Traceback" not in result.stderr, result.stderr
    exported = json.loads(outputs[2].stdout)
    assert len(exported) == len(urls)


def _failure() -> ValueError:
    try:
        raise ValueError(f"cannot reach postgresql://app:{SECRET}@db/calls")
    except ValueError as error:
        return error


def test_an_uncaught_traceback_is_printed_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    install_traceback_redaction()
    error = _failure()
    sys.excepthook(type(error), error, error.__traceback__)
    assert "ValueError" in err.getvalue() and "app:***@db" in err.getvalue()
    assert SECRET not in err.getvalue()


def test_logged_exceptions_and_extras_are_redacted() -> None:
    install_log_redaction()
    log = logging.getLogger("callgate.test.redaction_everywhere")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    plain = io.StringIO()
    plain_handler = logging.StreamHandler(plain)
    plain_handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.addHandler(plain_handler)
    try:
        error = _failure()
        log.error("delivery failed", exc_info=error, extra={"target": f"https://u:{SECRET}@h.example.com/"})
    finally:
        log.removeHandler(handler)
        log.removeHandler(plain_handler)
    entry = json.loads(stream.getvalue())
    assert "ValueError" in entry["exc"] and entry["target"] == "https://u:***@h.example.com/"
    assert SECRET not in stream.getvalue() and SECRET not in plain.getvalue()
    assert "ValueError" in plain.getvalue()


def test_a_misplaced_password_is_not_echoed_as_a_port() -> None:
    from callgate.swaig.urlguard import Guard

    problem = Guard().url_refusal(f"http://reporter:{SECRET}?x@127.0.0.1/report")
    assert problem is not None and problem.startswith("malformed URL") and SECRET not in problem


class _EchoingModel(BaseHTTPRequestHandler):
    """A model endpoint that refuses every request, quoting the API key it was sent."""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        key = self.headers.get("authorization", "").removeprefix("Bearer ")
        payload = json.dumps({"error": {"message": f"Incorrect API key provided: {key}"}}).encode()
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def test_an_api_key_echoed_by_the_model_endpoint_is_never_printed_or_stored(tmp_path: Path) -> None:
    key = f"plain{SECRET}"  # no recognisable shape: only its value gives it away
    agent = tmp_path / "agent.yaml"
    agent.write_text("sections:\n  main:\n    - ai:\n        prompt: {text: Hi.}\n", encoding="utf-8")
    store = tmp_path / "calls.db"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingModel)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {
            "CALLGATE_LLM_URL": f"http://127.0.0.1:{server.server_address[1]}/v1",
            "OPENAI_API_KEY": key,
            "CALLGATE_DB": str(store),
        }
        args = ["chat", str(agent), "--from", "+15551230000", "--to", "+15559870000"]
        result = run_cli(args, env=env, stdin="hello\n", timeout=120)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    exported = run_cli(["calls", "export"], env={"CALLGATE_DB": str(store)})  # no key in this env
    assert "401" in exported.stdout  # the failure is recorded, with the key masked in it
    for out in (result.stdout, result.stderr, exported.stdout, exported.stderr):
        assert SECRET not in out


def test_scenario_reports_mask_query_secrets_in_failures_and_requests(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    url = f"https://api.example.com/lookup?token=tok{SECRET}&key=key{SECRET}"
    scenario.write_text(
        f"""\
name: a strict scenario whose webhook URL carries secrets in its query
strict_http: true
agent:
  sections:
    main:
      - ai:
          prompt: {{text: You are Frank.}}
          SWAIG:
            functions:
              - function: lookup
                description: Look up.
                web_hook_url: "{url}"
llm:
  - text: Hi.
  - match: look
    tool_calls: [{{name: lookup, arguments: {{}}}}]
  - text: Done.
turns:
  - user: look me up
  - hangup
expect:
  said: [Done.]
""",
        encoding="utf-8",
    )
    text = run_cli(["test", str(scenario)])
    as_json = run_cli(["test", "--json", str(scenario)])
    assert text.returncode == 1 and "no stub for POST https://api.example.com/lookup" in text.stdout
    report = json.loads(as_json.stdout)[0]
    assert report["http"] and report["failures"]
    for out in (text.stdout, text.stderr, as_json.stdout, as_json.stderr):
        assert SECRET not in out


def test_only_secret_variables_are_registered() -> None:
    env = {"PWD": "/home/someone/project", "HOME": "/home/someone", "APP_PASSWORD": f"pw{SECRET}"}
    register_env_secrets(env)
    assert redact("cd /home/someone/project") == "cd /home/someone/project"
    assert redact(f"login with pw{SECRET} failed") == "login with *** failed"
