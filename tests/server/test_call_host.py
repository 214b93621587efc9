"""CallHost: many calls on one loop, each isolated, recorded, visible live, drained on request.

Real parts: the console channel's legs (the channel `callgate chat` uses), the scripted model over
the real OpenAI streaming protocol on loopback, a SQLite store, a loopback report receiver.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from callgate.agent.session import GOODBYE_BROKEN
from callgate.channels.console import ConsoleCall
from callgate.records.model import CallRecord
from callgate.records.store import DELIVERED, Store, open_store
from callgate.runtime.call_host import CallHost, CallNotReady, HostServices
from callgate.runtime.live import LiveEvent
from callgate.runtime.logs import CallIdFilter, JsonFormatter
from callgate.runtime.models import ModelPool
from callgate.scenario.model_server import ScriptedModelServer
from callgate.server import ServerContext, build_app
from callgate.swml.fetch import CallInfo
from callgate.swml.loader import LoadResult, parse_document
from callgate.swml.models import AI
from callgate.telephony.base import Call, CallerSpeech, CallEvent
from callgate.telephony.clock import SystemClock
from records.receiver import Receiver, running_receiver  # tests/ is on sys.path (rootdir packages)

GREETING = "Hi, this is Frank from Acme Support."
GOODBYE = "Thanks for calling, goodbye!"


def _document(base_url: str, report_url: str) -> LoadResult:
    return parse_document(
        {
            "sections": {
                "main": [
                    {
                        "ai": {
                            "prompt": {"text": "You are Frank."},
                            "post_prompt": {"text": "Summarize the call."},
                            "post_prompt_url": report_url,
                            "params": {"llm_base_url": base_url, "swaig_allow_private_urls": True},
                        }
                    }
                ]
            }
        },
        source="<test>",
    )


class CrashingEvents(ConsoleCall):
    """A leg whose event stream breaks (a channel bug) once the caller has said something."""

    async def events(self) -> AsyncIterator[CallEvent]:
        async for event in super().events():
            if isinstance(event, CallerSpeech):
                raise RuntimeError("the event stream broke")
            yield event


def _leg(number: str, cls: type[ConsoleCall] = ConsoleCall) -> ConsoleCall:
    console = Console(file=io.StringIO(), width=120)
    return cls(console, read_input=False, from_number=number, to_number="+15559870000", caller_name=number)


async def _until(check: Any, limit: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not check():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


def _records(store: Store) -> dict[str, CallRecord]:
    """The full records by caller number."""
    out = {}
    for summary in store.list_calls():
        record = store.get_call(summary.call_id)
        assert record is not None
        out[record.caller_id_num] = record
    return out


def _said(leg: ConsoleCall) -> list[str]:
    return [u.text for u in leg.utterances]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(str(tmp_path / "calls.db")) as opened:
        yield opened


class Harness:
    """A CallHost whose agent document picks the model script by the caller's number."""

    def __init__(
        self, server: ScriptedModelServer, receiver: Receiver, store: Store, http: httpx.AsyncClient
    ) -> None:
        self.clock = SystemClock()
        self.models = ModelPool({}, self.clock)
        self.prepared: list[str] = []
        self.fail_prepare_for: set[str] = set()
        self.no_ear_for: set[str] = set()

        async def agent(call: CallInfo) -> LoadResult:
            return _document(server.base_url(call.from_number.strip("+")), receiver.url)

        async def prepare(call: Call, ai: AI | None) -> None:
            if call.from_number in self.fail_prepare_for:
                raise RuntimeError("no synthesizer for this call")
            if call.from_number in self.no_ear_for:
                raise CallNotReady("speech recognition: faster-whisper is missing", can_speak=True)
            self.prepared.append(call.call_id)

        services = HostServices(self.clock, http, self.models.model_for, {}, store, report_wait=30)
        self.host = CallHost(agent, services, prepare=prepare)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def test_a_crashing_call_ends_alone_with_an_apology_and_both_are_recorded(
    receiver: Receiver, store: Store, http: httpx.AsyncClient
) -> None:
    scripts = {
        "1001": [{"text": GREETING}],
        "1002": [
            {"text": GREETING},
            {"match": "have to go", "text": f'Sure. <imsagent_hangup endword="{GOODBYE}"/>'},
        ],
    }
    async with ScriptedModelServer(scripts) as server:
        harness = Harness(server, receiver, store, http)
        host = harness.host
        crashing, calm = _leg("+1001", CrashingEvents), _leg("+1002")
        events = host.subscribe()
        tasks = [asyncio.create_task(host.accept(crashing)), asyncio.create_task(host.accept(calm))]
        await _until(lambda: GREETING in _said(crashing) and GREETING in _said(calm))
        assert {info.from_number for info in host.live()} == {"+1001", "+1002"}
        assert all(info.state == "active" and info.legs == 1 for info in host.live())
        crashing.type_line("Hello?")
        await tasks[0]
        # The other call is untouched: it goes on and ends by its own rules.
        assert not calm.ended
        calm.type_line("Sorry, I have to go.")
        await asyncio.wait_for(tasks[1], 60)
        await events.aclose()

    assert crashing.ended_reason == "pipeline-error"
    assert _said(crashing)[-1] == GOODBYE_BROKEN
    assert calm.ended_reason == "assistant-ended-call"
    assert _said(calm)[-1] == GOODBYE and GOODBYE_BROKEN not in _said(calm)
    records = _records(store)
    assert records["+1001"].ended_reason == "pipeline-error"
    crashes = [e for e in records["+1001"].timeline if e.kind == "crash"]
    assert crashes and "event stream broke" in crashes[0].data["error"]
    assert records["+1002"].ended_reason == "assistant-ended-call"
    # Each call's report was delivered to the receiver.
    for record in records.values():
        (report,) = store.reports(call_id=record.call_id)
        assert report.status == DELIVERED
    assert {body["call_id"] for body in (r.body for r in receiver.requests)} == {
        r.call_id for r in records.values()
    }
    assert harness.host.active == 0 and not harness.host.busy


async def test_a_call_that_cannot_be_set_up_is_refused_and_recorded(
    receiver: Receiver, store: Store, http: httpx.AsyncClient
) -> None:
    scripts = {"1002": [{"text": GREETING}, {"text": f'<imsagent_hangup endword="{GOODBYE}"/>'}]}
    async with ScriptedModelServer(scripts) as server:
        harness = Harness(server, receiver, store, http)
        harness.fail_prepare_for.add("+1001")
        broken, fine = _leg("+1001"), _leg("+1002")
        host = harness.host
        tasks = [asyncio.create_task(host.accept(broken)), asyncio.create_task(host.accept(fine))]
        await tasks[0]
        await _until(lambda: GREETING in _said(fine))
        fine.type_line("bye")
        await asyncio.wait_for(tasks[1], 60)
    assert broken.ended and broken.ended_reason == "pipeline-error"
    assert _said(broken) == []  # never answered: refused while ringing
    assert fine.ended_reason == "assistant-ended-call"
    record = store.get_call(broken.call_id)
    assert record is not None and record.ended_reason == "pipeline-error"
    assert any("no synthesizer" in e.data.get("error", "") for e in record.timeline)


async def test_a_call_that_can_speak_but_not_hear_is_answered_for_the_apology(
    receiver: Receiver, store: Store, http: httpx.AsyncClient
) -> None:
    async with ScriptedModelServer({}) as server:
        harness = Harness(server, receiver, store, http)
        harness.no_ear_for.add("+1001")
        leg = _leg("+1001")
        await harness.host.accept(leg)
    assert _said(leg) == [GOODBYE_BROKEN] and leg.ended_reason == "pipeline-error"
    record = store.get_call(leg.call_id)
    assert record is not None and record.ended_reason == "pipeline-error"
    assert [e.kind for e in record.timeline if e.kind in ("crash", "apology")] == ["crash", "apology"]
    assert len(receiver.requests) == 1  # the report still goes out


async def test_drain_lets_calls_finish_then_ends_the_rest(
    receiver: Receiver, store: Store, http: httpx.AsyncClient
) -> None:
    scripts = {
        "1001": [{"text": GREETING}, {"text": f'<imsagent_hangup endword="{GOODBYE}"/>'}],
        # This caller's agent never finishes its second reply (a stalled model).
        "1002": [{"text": GREETING}, {"stall": True}],
    }
    async with ScriptedModelServer(scripts) as server:
        harness = Harness(server, receiver, store, http)
        host = harness.host
        quick, stuck = _leg("+1001"), _leg("+1002")
        tasks = [asyncio.create_task(host.accept(quick)), asyncio.create_task(host.accept(stuck))]
        await _until(lambda: GREETING in _said(quick) and GREETING in _said(stuck))
        stuck.type_line("Are you there?")
        await _until(lambda: len(server.requests_of("1002")) == 2)
        drain = asyncio.create_task(host.drain(timeout=3.0))
        await _until(lambda: host.draining)
        # No new calls while draining: a new leg is refused and never recorded.
        late = _leg("+1003")
        await host.accept(late)
        assert late.ended and _said(late) == []
        quick.type_line("bye")  # a call in progress still ends by its own rules
        stopped = await asyncio.wait_for(drain, 60)
        await asyncio.gather(*tasks)
    assert stopped == [stuck.call_id]
    assert quick.ended_reason == "assistant-ended-call"
    assert stuck.ended_reason == "worker-shutdown"
    reasons = {number: r.ended_reason for number, r in _records(store).items()}
    assert reasons == {"+1001": "assistant-ended-call", "+1002": "worker-shutdown"}


async def test_live_view_events_and_operator_hangup(
    receiver: Receiver, store: Store, http: httpx.AsyncClient
) -> None:
    scripts = {"1001": [{"text": GREETING}]}  # then the agent waits for the caller
    async with ScriptedModelServer(scripts) as server:
        host = Harness(server, receiver, store, http).host
        leg = _leg("+1001")
        events = host.subscribe()
        task = asyncio.create_task(host.accept(leg))
        seen: list[LiveEvent] = []

        async def collect() -> None:
            async for event in events:
                seen.append(event)
                if event.kind == "call-recorded":
                    return

        collector = asyncio.create_task(collect())
        await _until(lambda: GREETING in _said(leg))
        (info,) = host.live()
        assert (info.call_id, info.from_number, info.state) == (leg.call_id, "+1001", "active")
        assert info.to_dict()["from"] == "+1001"
        assert await host.transfer("no-such-call", "+15550002222") == "not-found"
        assert await host.hangup("no-such-call") is False
        assert await host.hangup(leg.call_id) is True
        await asyncio.wait_for(task, 60)
        await asyncio.wait_for(collector, 30)
        await events.aclose()
    assert leg.ended_reason == "manually-canceled"
    kinds = [e.kind for e in seen]
    assert kinds[0] == "call-started" and kinds[-1] == "call-recorded"
    assert kinds.index("hangup") < kinds.index("call-ended")
    ended = next(e for e in seen if e.kind == "call-ended")
    assert ended.data["ended_reason"] == "manually-canceled" and ended.call_id == leg.call_id
    assert host.live() == []
    assert json.loads(json.dumps(ended.to_dict()))["call_id"] == leg.call_id


async def test_every_log_record_of_a_call_carries_its_id(
    receiver: Receiver, store: Store, http: httpx.AsyncClient
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(CallIdFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        scripts = {"1001": [{"text": GREETING}]}
        async with ScriptedModelServer(scripts) as server:
            host = Harness(server, receiver, store, http).host
            leg = _leg("+1001", CrashingEvents)
            task = asyncio.create_task(host.accept(leg))
            await _until(lambda: GREETING in _said(leg))
            leg.type_line("Hello?")
            await asyncio.wait_for(task, 60)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [line for line in lines if line.get("call_id") == leg.call_id]
    messages = {line["msg"] for line in mine}
    assert {"call started", "call ended", "call recorded"} <= messages
    # Logged deep inside the call's own tasks (the runner's crash handling), still with the id.
    failed = next(line for line in mine if line["msg"].startswith("call failed"))
    assert failed["logger"] == "callgate.runtime.call_runner" and "RuntimeError" in failed["exc"]
    said = [line for line in mine if line.get("event") == "crash"]
    assert said and said[0]["data"]["error"].startswith("RuntimeError")
    ended = next(line for line in mine if line["msg"] == "call ended")
    assert ended["ended_reason"] == "pipeline-error"


async def test_build_app_serves_healthz_and_plugs_in_route_providers(
    receiver: Receiver, store: Store, http: httpx.AsyncClient
) -> None:
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import BaseRoute, Route

    async with ScriptedModelServer({}) as server:
        host = Harness(server, receiver, store, http).host

        def extra(context: ServerContext) -> list[BaseRoute]:
            async def count(request: Request) -> PlainTextResponse:
                return PlainTextResponse(str(len(context.live.live())))

            return [Route("/count", count)]

        app = build_app(ServerContext(live=host, draining=lambda: host.draining), extra)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ok = await client.get("/healthz")
            assert ok.status_code == 200
            assert ok.json() == {"status": "ok", "active_calls": 0, "draining": False}
            assert (await client.get("/count")).text == "0"
            await host.drain(timeout=0)
            draining = await client.get("/healthz")
            assert draining.status_code == 503 and draining.json()["status"] == "draining"
