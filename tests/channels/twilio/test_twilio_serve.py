"""End to end: `callgate serve --http --public-url` as a user runs it, a Twilio number pointed at it.

The stand-in plays Twilio: it calls the voice webhook through the "tunnel" (signed over the public
URL), streams the call's audio, plays callgate's espeak-ng speech in real time and acknowledges its
marks, and records the REST requests of the `twilio` package, which `CALLGATE_TWILIO_API_URL` points
at it. The call ends by the ixHello silence timeout; the record is read back with `callgate calls`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from test_twilio_calls import GREETING, ixhello
from twilio_standin import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, TwilioStandIn

from callgate.scenario.model_server import ScriptedModelServer

ROOT = Path(__file__).resolve().parents[3]
CALLGATE = ROOT / ".venv" / "bin" / "callgate"
GOODBYE = "I haven't heard from you, disconnecting the call now. Thank you for your time."

pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_callgate_serve_answers_a_twilio_number_and_hangs_up_after_twilio_played_the_goodbye(
    tmp_path: Path,
) -> None:
    agent_file = tmp_path / "agent.yaml"
    agent_file.write_text(yaml.safe_dump(ixhello(inactivity_timeout=2000)))
    db = tmp_path / "calls.db"
    port = free_port()
    standin = TwilioStandIn(local_base=f"http://127.0.0.1:{port}")
    await standin.start()
    log = (tmp_path / "serve.log").open("w")
    proc: asyncio.subprocess.Process | None = None
    try:
        async with ScriptedModelServer({"agent": [{"text": GREETING}]}) as model:
            env = {
                **os.environ,
                "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "CALLGATE_TWILIO_API_URL": standin.base_url,
                "CALLGATE_LLM_URL": model.base_url("agent"),
                "OPENAI_API_KEY": "test-key",
                "CALLGATE_DB": str(db),
            }
            proc = await asyncio.create_subprocess_exec(
                str(CALLGATE),
                "serve",
                str(agent_file),
                "--http",
                f"127.0.0.1:{port}",
                "--public-url",
                PUBLIC_URL,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
            )
            async with httpx.AsyncClient() as client:

                async def healthy() -> None:
                    while True:
                        with contextlib.suppress(httpx.HTTPError):
                            if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                                return
                        await asyncio.sleep(0.1)

                await asyncio.wait_for(healthy(), 30)
            call = await standin.place_call(caller_name="Ann")
            await asyncio.wait_for(call.stream.closed.wait(), 60)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await standin.stop()
        log.close()

    output = (tmp_path / "serve.log").read_text()
    stream = call.stream
    assert len(stream.utterances) >= 2, output  # the greeting, then the goodbye
    assert all(u.frames > 10 for u in stream.utterances), output
    # The call was completed through the REST API only after Twilio played the goodbye's last frame.
    played = event_index_in(standin, "mark-played", call.sid, stream.utterances[-1].mark)
    completed = event_index_in(
        standin, "rest", call.sid, lambda d: json.loads(d).get("Status") == "completed"
    )
    assert played < completed
    assert [r.form for r in standin.requests] == [{"Status": "completed"}]

    listed = subprocess.run(
        [str(CALLGATE), "calls", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CALLGATE_DB": str(db)},
    )
    assert listed.returncode == 0, listed.stderr
    [record] = json.loads(listed.stdout)
    assert record["ended_reason"] == "silence-timed-out"


def event_index_in(standin: TwilioStandIn, kind: str, sid: str, detail: object) -> int:
    for index, (_t, k, s, d) in enumerate(standin.events):
        if k == kind and s == sid and (detail(d) if callable(detail) else d == detail):
            return index
    raise AssertionError(f"no {kind} event for {sid}")
