"""`callgate serve` answering real SIP calls: a sipp caller, the scripted model on loopback, offline
speech (espeak-ng), the records and reports afterwards. Each test runs the real process."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from records.receiver import Receiver, running_receiver  # tests/ is on sys.path (rootdir packages)

from .peers import ModelThread, Sipp, capturing, document_server, first_sip, voiced_seconds
from .serving import CALLGATE, Served, serving

GREETING = "Hello, this is Frank from Acme."
GOODBYE = "Thanks for calling, goodbye!"
HANGS_UP = {"text": f'{GREETING} <imsagent_hangup endword="{GOODBYE}"/>'}
FAILS = {"status": 500, "message": "the model is down"}


def _ai(llm_url: str, report_url: str) -> dict[str, Any]:
    return {
        "prompt": {"text": "You are Frank."},
        "post_prompt": {"text": "Summarize the call."},
        "post_prompt_url": report_url,
        "params": {"llm_base_url": llm_url, "swaig_allow_private_urls": True},
    }


def _agent(tmp_path: Path, llm_url: str, report_url: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({"sections": {"main": [{"ai": _ai(llm_url, report_url)}]}}))
    return path


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def _calls(db: Path) -> list[dict[str, Any]]:
    listed = subprocess.run(
        [str(CALLGATE), "calls", "list", "--json", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    return list(json.loads(listed.stdout))


def _show(db: Path, call_id: str) -> dict[str, Any]:
    shown = subprocess.run(
        [str(CALLGATE), "calls", "export", call_id, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    exported = json.loads(shown.stdout)
    return dict(exported[0] if isinstance(exported, list) else exported)


def _call_logs(served: Served, call_id: str) -> list[dict[str, Any]]:
    return [line for line in served.lines if line.get("call_id") == call_id]


def test_a_call_is_answered_spoken_to_and_hung_up_after_the_goodbye(
    tmp_path: Path, receiver: Receiver
) -> None:
    db = tmp_path / "calls.db"
    with ModelThread({"agent": [HANGS_UP]}) as model:
        agent = _agent(tmp_path, model.base_url("agent"), receiver.url)
        with serving(agent, sip=True, env={"CALLGATE_DB": str(db)}) as served:
            assert served.sip_port is not None
            caller = Sipp("agent_hangs_up.xml", served.sip_port, tmp_path, caller="+15551230000")
            with capturing([caller.sip_port, caller.media_port], tmp_path / "call.pcap") as packets:
                assert caller.wait() == 0, caller.explain()  # answered, then the agent's BYE
            ended = served.wait_log(msg="call recorded")
            assert served.stop(signal.SIGTERM) == 0
    # The caller heard the greeting and the goodbye (espeak-ng over PCMU), all of it before the BYE.
    bye = first_sip(packets, caller.sip_port, "BYE")
    heard = voiced_seconds(packets, caller.media_port)
    assert heard > 2.0
    assert voiced_seconds(packets, caller.media_port, before=bye) == heard
    call_id = ended["call_id"]
    assert "@" in call_id  # the SIP Call-ID names the call everywhere
    logs = _call_logs(served, call_id)
    started = next(line for line in logs if line["msg"] == "call started")
    assert started["from"] == "+15551230000" and started["to"] == "+15559870000"
    ended_line = next(line for line in logs if line["msg"] == "call ended")
    assert ended_line["ended_reason"] == "assistant-ended-call"
    (listed,) = _calls(db)
    assert listed["call_id"] == call_id and listed["ended_reason"] == "assistant-ended-call"
    record = _show(db, call_id)
    spoken = [m["content"] for m in record["call_log"] if m.get("role") == "assistant"]
    assert spoken and GREETING in spoken[0]
    assert [r.body["call_id"] for r in receiver.requests] == [call_id]  # the report, delivered


def test_a_failing_model_gets_the_spoken_fallback_then_pipeline_error(
    tmp_path: Path, receiver: Receiver
) -> None:
    db = tmp_path / "calls.db"
    # Each turn's request is tried three times (two retries on 5xx) before the turn gives up.
    with ModelThread({"agent": [FAILS] * 6}) as model:
        agent = _agent(tmp_path, model.base_url("agent"), receiver.url)
        with serving(agent, sip=True, env={"CALLGATE_DB": str(db)}) as served:
            assert served.sip_port is not None
            # The caller hears the first fallback, presses 1 after 6 s (a new turn, which fails
            # too), then hears the goodbye and gets the BYE.
            caller = Sipp("dtmf_then_agent_hangs_up.xml", served.sip_port, tmp_path, caller="+15551230000")
            with capturing([caller.sip_port, caller.media_port], tmp_path / "call.pcap") as packets:
                assert caller.wait() == 0, caller.explain()
            recorded = served.wait_log(msg="call recorded")
            requests = len(model.requests)
    assert requests == 9  # two turns of three attempts, then the post_prompt's three
    assert recorded["ended_reason"] == "pipeline-error"
    record = _show(db, recorded["call_id"])
    kinds = [entry["kind"] for entry in record["timeline"]]
    assert kinds.count("model-error") == 2 and "dtmf" in kinds
    assert record["ended_reason"] == "pipeline-error"
    # Never a silent line: the fallback before the DTMF, the goodbye after it, both before the BYE.
    dtmf_sent = min(p.at for p in packets if p.src_port == caller.media_port)
    bye = first_sip(packets, caller.sip_port, "BYE")
    before_dtmf = voiced_seconds(packets, caller.media_port, before=dtmf_sent)
    assert before_dtmf > 1.5  # "Sorry, I'm having trouble answering right now…"
    assert voiced_seconds(packets, caller.media_port, before=bye) - before_dtmf > 1.5  # the goodbye
    assert len(receiver.requests) == 1


def test_two_calls_at_once_one_crashes_the_other_completes(tmp_path: Path, receiver: Receiver) -> None:
    db = tmp_path / "calls.db"
    with ModelThread({"calm": [HANGS_UP]}) as model:

        def choose(call: dict[str, Any]) -> dict[str, Any]:
            # The first caller's document names a model endpoint no client can use: setting up its
            # model raises inside the call.
            llm = "127.0.0.1:9/not-a-url" if call.get("from") == "+1001" else model.base_url("calm")
            return {"sections": {"main": [{"ai": _ai(llm, receiver.url)}]}}

        with (
            document_server(choose) as documents,
            serving(documents.url, sip=True, env={"CALLGATE_DB": str(db)}) as served,
        ):
            assert served.sip_port is not None
            crashing = Sipp("agent_hangs_up.xml", served.sip_port, tmp_path, caller="+1001")
            calm = Sipp("agent_hangs_up.xml", served.sip_port, tmp_path, caller="+1002")
            assert crashing.wait() == 0, crashing.explain()
            assert calm.wait() == 0, calm.explain()
            served.wait_until(lambda: len(served.logs(msg="call recorded")) == 2)
            assert served.stop(signal.SIGTERM) == 0
    assert {c["from"] for c in documents.calls} == {"+1001", "+1002"}
    reasons = {}
    for listed in _calls(db):
        record = _show(db, listed["call_id"])
        reasons[record["caller_id_num"]] = record["ended_reason"]
        if record["caller_id_num"] == "+1001":
            kinds = [entry["kind"] for entry in record["timeline"]]
            assert "crash" in kinds and "apology" in kinds
    assert reasons == {"+1001": "pipeline-error", "+1002": "assistant-ended-call"}, served.raw
    assert len(receiver.requests) == 2  # both reports delivered
    crash_logs = [line for line in served.lines if line["msg"].startswith("call failed")]
    assert len(crash_logs) == 1 and crash_logs[0]["call_id"] != ""


def test_sigterm_drains_new_calls_get_503_calls_in_progress_finish(
    tmp_path: Path, receiver: Receiver
) -> None:
    db = tmp_path / "calls.db"
    scripts = {"agent": [{"text": GREETING}] * 2}  # the agent greets and waits for the caller
    with ModelThread(scripts) as model:
        agent = _agent(tmp_path, model.base_url("agent"), receiver.url)
        env = {"CALLGATE_DB": str(db)}
        with serving(agent, sip=True, env=env, extra=["--drain-timeout", "4"]) as served:
            assert served.sip_port is not None
            port = served.sip_port
            leaving = Sipp("caller_hangs_up.xml", port, tmp_path, caller="+1001")
            staying = Sipp("agent_hangs_up.xml", port, tmp_path, caller="+1002")  # waits for our BYE
            served.wait_until(lambda: len(served.logs(msg="assistant")) == 2)  # both greeted
            served.proc.send_signal(signal.SIGTERM)
            served.wait_log(msg="draining")
            refused = Sipp("refused.xml", port, tmp_path, caller="+1003")
            probe = Sipp("options_draining.xml", port, tmp_path)
            assert refused.wait() == 0, refused.explain()
            assert probe.wait() == 0, probe.explain()
            assert served.health().json()["draining"] is True
            assert leaving.wait() == 0, leaving.explain()  # ended by its own rules: the caller left
            assert staying.wait() == 0, staying.explain()  # ended by the drain's hard stop: our BYE
            assert served.proc.wait(timeout=60) == 0
    stopped = served.logs(msg="stopped")[0]["ended_by_drain"]
    reasons = {c["call_id"]: c["ended_reason"] for c in _calls(db)}
    assert sorted(reasons.values()) == ["customer-ended-call", "worker-shutdown"]
    assert [reasons[call_id] for call_id in stopped] == ["worker-shutdown"]
    assert len(receiver.requests) == 2
