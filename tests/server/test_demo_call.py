"""`callgate demo` as a real phone call: a scripted caller speaks (espeak-ng over RTP) to the demo
agent answering over SIP, the agent hears it (offline Whisper), answers, and hangs up after its
goodbye. The model is the scripted one on loopback (CALLGATE_LLM_URL), as a user's endpoint would be."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from callgate.runtime.models import ModelPool
from callgate.swml.models import AI
from callgate.telephony.clock import SystemClock

from .peers import ModelThread
from .serving import CALLGATE

GOODBYE = "Goodbye, thanks for calling Rosa's Bakery!"


def test_make_demo_places_a_real_call_and_the_agent_hangs_up_after_its_goodbye(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    scripts = {"agent": [{"text": "We are open from 7 am to 6 pm, Monday to Saturday."}, {"text": GOODBYE}]}
    with ModelThread(scripts) as model:
        env = {**os.environ, "CALLGATE_LLM_URL": model.base_url("agent"), "CALLGATE_DB": str(db)}
        result = subprocess.run(
            [str(CALLGATE), "demo"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        heard = [r.messages[-1]["content"] for r in model.requests]
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    # The transcript: the greeting, the caller's lines, what the agent heard of them, its answers.
    assert "Rosa: Hello, this is Rosa" in out and "Caller: Hi! What are your opening hours?" in out
    assert "Rosa heard:" in out and f"Rosa: {GOODBYE}" in out
    assert "assistant-said-end-call-phrase" in out and "the agent hung up" in out
    # The model got the caller's words, recognised from the RTP audio.
    assert len(heard) == 2 and "open" in heard[0].lower() and "bye" in heard[1].lower()
    listed = subprocess.run(
        [str(CALLGATE), "calls", "list", "--json", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    (call,) = json.loads(listed.stdout)
    assert call["ended_reason"] == "assistant-said-end-call-phrase"


async def test_the_embedded_model_in_its_own_process_reports_a_missing_install_clearly() -> None:
    """In a process that hears callers the embedded model runs in a child process; without
    llama-cpp-python the request fails with the install hint (the call gets the spoken fallback)."""
    import importlib.util

    import pytest

    from callgate.llm.types import ModelError, ModelSettings

    if importlib.util.find_spec("llama_cpp") is not None:
        pytest.skip("llama-cpp-python is installed: the child answers")
    pool = ModelPool({}, SystemClock(), embedded_in_child=True)
    try:
        model = pool.model_for("agent", AI())
        assert pool.model_for("post_prompt", AI()) is model  # one child for every call
        with pytest.raises(ModelError) as caught:
            async for _ in model.stream([{"role": "user", "content": "hi"}], None, ModelSettings(model="m")):
                pass
        assert "make demo" in str(caught.value)
    finally:
        await pool.aclose()
