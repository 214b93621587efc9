"""Credentials (issue 10, item 3): userinfo, DSN passwords, auth headers and webhook/post_prompt
auth never show in `calls show`, `calls export`, `calls deliver`, store errors, the timeline or the
logs — one redaction function — while the requests themselves still carry them."""

from __future__ import annotations

import base64
import json
import logging
import textwrap
from pathlib import Path

import pytest

from callgate.records.model import CallRecord
from callgate.records.store import NewReport, open_store
from callgate.redact import install_log_redaction, redact, redact_data
from callgate.timeline import Timeline

from .report_faults import report_agent
from .security_support import ModelThread, Receiver, chat, closed_port, run_cli

SECRET = "s3cret-Pa55word"


def test_calls_show_and_export_never_print_post_prompt_credentials(tmp_path: Path) -> None:
    store = tmp_path / "calls.db"
    with Receiver() as receiver:
        url = f"http://reporter:{SECRET}@127.0.0.1:{receiver.port}/report?token=tok-{SECRET}"
        agent = report_agent(tmp_path, url)
        scripts = {
            "agent": [{"text": 'Hi. <imsagent_hangup endword="Bye."/>'}],
            "post_prompt": [{"text": "ok"}],
        }
        with ModelThread(scripts) as model:
            result = chat(agent, [], model.base_url("agent"), store)
        assert result.returncode == 0, result.stderr
        # The credentials are still used for what they are for: the report went out with them.
        posted = [r for r in receiver.requests if r.path.startswith("/report")]
        assert posted, "the report was not delivered"
        auth = base64.b64decode(posted[0].headers["authorization"].split()[1]).decode()
        assert auth == f"reporter:{SECRET}"
    env = {"CALLGATE_DB": str(store)}
    listed = json.loads(run_cli(["calls", "list", "--json"], env=env).stdout)
    shown = run_cli(["calls", "show", listed[0]["call_id"]], env=env)
    exported = run_cli(["calls", "export"], env=env)
    for out in (result.stdout, shown.stdout, exported.stdout, shown.stderr, exported.stderr):
        assert SECRET not in out
    assert shown.returncode == 0 and exported.returncode == 0
    report = json.loads(exported.stdout)[0]["reports"][0]
    assert report["url"].startswith("http://reporter:***@127.0.0.1:") and "token=***" in report["url"]


def test_calls_deliver_prints_no_credentials(tmp_path: Path) -> None:
    store = tmp_path / "calls.db"
    with open_store(str(store)) as opened:
        url = f"http://reporter:{SECRET}@127.0.0.1:{closed_port()}/report"
        opened.save_call(
            CallRecord(call_id="call-1"), NewReport("key-1", url, {"call_id": "call-1"}), now=0.0
        )
    delivered = run_cli(["calls", "deliver", "--no-wait"], env={"CALLGATE_DB": str(store)})
    assert delivered.returncode == 0, delivered.stderr
    assert "reporter:***@127.0.0.1" in delivered.stderr  # it says which report it tried
    assert SECRET not in delivered.stdout + delivered.stderr
    exported = run_cli(["calls", "export"], env={"CALLGATE_DB": str(store)})
    assert "reporter:***@127.0.0.1" in exported.stdout and SECRET not in exported.stdout


@pytest.mark.parametrize(
    "db",
    [
        f"mysql://app:{SECRET}@db.example.com/calls",  # unknown scheme: the URL is in the message
        f"postgresql://app:{SECRET}@127.0.0.1:1/calls",  # nothing listens on port 1
        f"postgresql://app:{SECRET}@127.0.0.1:1/calls?sslmode=bogus",  # psycopg rejects the option
    ],
)
def test_store_errors_never_print_the_store_password(db: str) -> None:
    for args in (["calls", "list"], ["calls", "export"], ["calls", "deliver", "--no-wait"]):
        result = run_cli([*args, "--db", db])
        assert result.returncode == 2, result
        assert "Traceback" not in result.stderr
        assert SECRET not in result.stdout + result.stderr
        assert "error" in result.stderr


def test_chat_with_a_broken_store_warns_without_the_password(tmp_path: Path) -> None:
    agent = report_agent(tmp_path, "https://reports.example.com/x")
    db = f"mysql://app:{SECRET}@db.example.com/calls"
    with ModelThread({"agent": [{"text": 'Hi. <imsagent_hangup endword="Bye."/>'}]}) as model:
        result = run_cli(
            ["chat", str(agent)],
            env={"CALLGATE_LLM_URL": model.base_url("agent"), "CALLGATE_DB": db, "OPENAI_API_KEY": "test"},
            timeout=90,
        )
    assert "call records are off" in result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_the_timeline_never_holds_credentials() -> None:
    timeline = Timeline()
    event = timeline.add(
        1.0,
        "warm-music",
        source=f"https://music:{SECRET}@cdn.example.com/hold.wav",
        headers={"Authorization": f"Basic {SECRET}", "X-Api-Key": SECRET},
        error=f"cannot open postgresql://app:{SECRET}@db/x (password={SECRET})",
    )
    assert SECRET not in repr(event.data) and SECRET not in timeline.render()
    assert event.data["source"] == "https://music:***@cdn.example.com/hold.wav"


def test_scenario_output_never_holds_credentials(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        textwrap.dedent(
            f"""\
            name: hold music with credentials in its URL
            agent:
              sections:
                main:
                  - answer
                  - play: {{url: "https://music:{SECRET}@cdn.example.com/hold.wav"}}
                  - hangup
            turns: []
            expect:
              said: ["this is never said"]
            """
        ),
        encoding="utf-8",
    )
    result = run_cli(["test", str(scenario)])
    as_json = run_cli(["test", "--json", str(scenario)])
    assert result.returncode == 1 and "play" in result.stdout
    assert SECRET not in result.stdout + result.stderr + as_json.stdout + as_json.stderr


def test_logs_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    log = logging.getLogger("callgate.test.credentials")
    with caplog.at_level(logging.INFO):
        log.warning("cannot reach %s", f"postgresql://app:{SECRET}@db:5432/calls")
        log.info("header Authorization: Bearer %s", SECRET)
        log.info("dsn host=db password=%s", SECRET)
    assert caplog.records and all(SECRET not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "text",
    [
        f"https://user:{SECRET}@example.com/x",
        f"https://{SECRET}@example.com/x",
        f"postgresql://app:{SECRET}@db/calls",
        f"postgresql://app:p@ss/{SECRET}@db/calls",  # an unencoded @ and / in the password
        f"host=db user=app password={SECRET} dbname=calls",
        f"https://hooks.example.com/x?api_key={SECRET}&a=1",
        f"Authorization: Basic {SECRET}",
        f'{{"web_hook_auth_password": "{SECRET}"}}',
        f"Bearer {SECRET}",
    ],
)
def test_one_function_redacts_every_spelling(text: str) -> None:
    assert SECRET not in redact(text)


def test_structured_secrets_by_key() -> None:
    data = {
        "web_hook_auth_user": "bob",
        "web_hook_auth_password": SECRET,
        "web_hook_auth_pass": SECRET,
        "post_prompt_auth_password": SECRET,
        "destination_auth_password": SECRET,
        "headers": {"X-Api-Key": SECRET, "Authorization": SECRET},
        "meta_data_token": "https://hooks.example.com/x",
        "total_input_tokens": 12,
    }
    shown = redact_data(data)
    assert SECRET not in json.dumps(shown)
    assert shown["web_hook_auth_user"] == "bob" and shown["total_input_tokens"] == 12
    assert shown["meta_data_token"] == "https://hooks.example.com/x"
