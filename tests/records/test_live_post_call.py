"""A live (real-clock) call's post-call work, as `callgate chat` runs it: record, post_prompt,
report delivered; and the background worker that sends what an earlier run left pending."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx

from callgate.channels.sim import SimWorld
from callgate.llm.client import ChatModel, OpenAIChatModel
from callgate.records.store import DELIVERED, NewReport, open_store
from callgate.runtime.call_runner import CallRunner, CallSetup
from callgate.runtime.post_call import PostCallServices, deliver_in_background, finish_live_call
from callgate.scenario.model_server import ScriptedModelServer
from callgate.swaig.context import CallContext
from callgate.swml.loader import parse_document
from callgate.swml.models import AI
from callgate.telephony.clock import SystemClock

from .receiver import running_receiver
from .test_store import record


async def test_a_live_call_is_recorded_and_its_report_delivered(tmp_path: Path) -> None:
    clock = SystemClock()
    scripts = {
        "agent": [{"text": "Hi. Bye!", "tool_calls": [{"name": "hangup", "arguments": {}}]}],
        "post_prompt": [{"text": '{"resolved": true} Short call.'}],
    }
    with running_receiver() as receiver:
        document = parse_document(
            {
                "sections": {
                    "main": [
                        {
                            "ai": {
                                "prompt": {"text": "Greet, then say goodbye and hang up the call."},
                                "post_prompt": {"text": "Summarize.", "temperature": 0.1},
                                "post_prompt_url": receiver.url,
                                # The receiver is on loopback: the guard lets it by only when asked.
                                "params": {"swaig_allow_private_urls": True},
                            }
                        }
                    ]
                }
            },
            source="<test>",
        ).document
        world = SimWorld(clock, caller_name="Ann")
        async with ScriptedModelServer(scripts) as server, httpx.AsyncClient() as http:

            def model_for(role: str, ai: AI) -> ChatModel:
                return OpenAIChatModel(server.base_url(role), "key", clock=clock)

            context = CallContext(
                caller_id_num="+15551230000", caller_id_name="Ann", to_number="+15559870000"
            )
            runner = CallRunner(
                CallSetup(document, world.caller, clock, http, model_for, context, switch=world.switch)
            )
            await asyncio.wait_for(runner.run(), 60)
            with open_store(str(tmp_path / "calls.db")) as store:
                services = PostCallServices(store, http, clock, model_for)
                saved, status = await finish_live_call(runner, services, wait=30)
                assert status == DELIVERED
                assert store.get_call(saved.call_id) == saved
            # The post_prompt ran with its own temperature.
            post_requests = [r for r in server.requests if r.role == "post_prompt"]
            assert [r.settings.get("temperature") for r in post_requests] == [0.1]
    assert saved.post_prompt_data is not None and saved.post_prompt_data.parsed == [{"resolved": True}]
    (request,) = receiver.requests
    assert request.body["call_id"] == saved.call_id
    assert request.body["post_prompt_data"]["substituted"] == "Short call."


async def test_the_background_worker_sends_what_an_earlier_run_left_pending(tmp_path: Path) -> None:
    clock = SystemClock()
    with running_receiver() as receiver, open_store(str(tmp_path / "calls.db")) as store:
        store.save_call(record("left-over"), NewReport("k-left", receiver.url, {"n": 1}), now=clock.time())
        async with httpx.AsyncClient() as http:
            worker = asyncio.create_task(deliver_in_background(store, http, clock))
            try:
                for _ in range(200):
                    if store.reports()[0].status == DELIVERED:
                        break
                    await asyncio.sleep(0.05)
            finally:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
        assert store.reports()[0].status == DELIVERED
    assert list(receiver.accepted) == ["k-left"]
