"""The admin API and metrics of `callgate dashboard`, a real process on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from callgate.server.auth import load_admin_token
from records.receiver import Receiver, running_receiver

from .dashboard_world import (
    GOODBYE_CALL,
    SILENT_CALL,
    TOKEN,
    TRANSFER_CALL,
    Dashboard,
    deliver_once,
    fill_store,
    running_dashboard,
)

ENDPOINTS = [
    ("GET", "/api/calls"),
    ("GET", f"/api/calls/{GOODBYE_CALL.call_id}"),
    ("POST", f"/api/calls/{SILENT_CALL.call_id}/redeliver"),  # no report: nothing requeued
    ("GET", "/api/live"),
    ("POST", "/api/live/no-such-call/hangup"),
    ("POST", "/api/live/no-such-call/transfer"),
    ("GET", "/api/stats"),
]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver(Receiver(always_status=500)) as state:
        yield state


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Dashboard]:
    db = tmp_path_factory.mktemp("dash") / "calls.db"
    fill_store(db, receiver.url)
    # The goodbye call's report fails for good (one attempt, the receiver answers 500).
    deliver_once(db)
    with running_dashboard(db) as served:
        yield served


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_needs_the_token(dashboard: Dashboard, method: str, path: str) -> None:
    send = dashboard.get if method == "GET" else dashboard.post
    assert send(path, token=None).status_code == 401
    assert send(path, token="wrong-token").status_code == 401
    response = send(path, token=TOKEN)
    assert response.status_code in (200, 400, 404), response.text
    assert response.status_code != 401


def test_events_stream_needs_the_token(dashboard: Dashboard) -> None:
    assert dashboard.get("/api/events", token=None).status_code == 401
    with httpx.stream(
        "GET", dashboard.url + "/api/events", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        first = next(response.iter_lines())
        assert first.startswith(":")


def test_calls_are_listed_newest_first_and_filtered(dashboard: Dashboard) -> None:
    calls = dashboard.get("/api/calls").json()["calls"]
    assert [c["call_id"] for c in calls] == [GOODBYE_CALL.call_id, TRANSFER_CALL.call_id, SILENT_CALL.call_id]

    def ids(query: str) -> list[str]:
        response = dashboard.get("/api/calls?" + query)
        assert response.status_code == 200, response.text
        return [c["call_id"] for c in response.json()["calls"]]

    assert ids("reason=silence-timed-out") == [SILENT_CALL.call_id]
    assert ids("transfer=completed") == [TRANSFER_CALL.call_id]
    assert ids("report=failed") == [GOODBYE_CALL.call_id]
    assert ids("report=none") == [TRANSFER_CALL.call_id, SILENT_CALL.call_id]
    assert ids("number=4445555") == [TRANSFER_CALL.call_id]
    assert ids("since=2h") == [GOODBYE_CALL.call_id, TRANSFER_CALL.call_id]
    assert ids("limit=1&offset=1") == [TRANSFER_CALL.call_id]
    assert dashboard.get("/api/calls?since=yesterdayish").status_code == 400


def test_one_call_has_everything_and_no_credential(dashboard: Dashboard) -> None:
    body = dashboard.get(f"/api/calls/{GOODBYE_CALL.call_id}").json()
    assert body["ended_reason"] == "assistant-ended-call"
    assert [e["kind"] for e in body["timeline"]][:2] == ["answered", "say"]
    (report,) = body["reports"]
    assert report["status"] == "failed" and report["attempts"] == 1 and report["last_status"] == 500
    assert "s3cret-pass" not in dashboard.get(f"/api/calls/{GOODBYE_CALL.call_id}").text
    assert dashboard.get("/api/calls/nope").status_code == 404


def test_stats_count_calls_by_day(dashboard: Dashboard) -> None:
    days = dashboard.get("/api/stats?days=3").json()["days"]
    assert len(days) == 3
    assert sum(day["calls"] for day in days) == 3
    assert sum(day["ended_reason"].get("silence-timed-out", 0) for day in days) == 1
    assert sum(day["transfer"].get("completed", 0) for day in days) == 1


def test_live_actions_on_a_store_only_server(dashboard: Dashboard) -> None:
    assert dashboard.get("/api/live").json() == {"calls": []}
    assert dashboard.post("/api/live/x/hangup").status_code == 404
    assert dashboard.post("/api/live/x/transfer", json={"destination": "+15550001111"}).status_code == 404
    assert dashboard.post("/api/live/x/transfer", json={}).status_code == 400


def test_metrics_are_open_and_count_reports(dashboard: Dashboard) -> None:
    text = httpx.get(dashboard.url + "/metrics", timeout=10).text
    assert 'callgate_reports{state="failed"} 1.0' in text
    assert "callgate_active_calls 0.0" in text
    assert "# TYPE callgate_calls_total counter" in text


def test_redeliver_sends_a_failed_report_again(tmp_path: Path) -> None:
    with running_receiver(Receiver(always_status=500)) as receiver:
        db = tmp_path / "calls.db"
        fill_store(db, receiver.url)
        deliver_once(db)
        assert len(receiver.requests) == 1
        receiver.always_status = None  # the receiver is fixed
        with running_dashboard(db) as served:
            answer = served.post(f"/api/calls/{GOODBYE_CALL.call_id}/redeliver")
            assert answer.json() == {"call_id": GOODBYE_CALL.call_id, "requeued": 1}
            deadline = time.monotonic() + 30
            status = ""
            while time.monotonic() < deadline:
                status = served.get(f"/api/calls/{GOODBYE_CALL.call_id}").json()["reports"][0]["status"]
                if status == "delivered":
                    break
                time.sleep(0.2)
            assert status == "delivered"
        assert len(receiver.accepted) == 1


def test_a_generated_token_is_kept_private_and_reused(tmp_path: Path) -> None:
    env = {"CALLGATE_ADMIN_TOKEN_FILE": str(tmp_path / "token")}
    first = load_admin_token(env)
    assert first.source.startswith("generated") and len(first.value) >= 24
    assert (tmp_path / "token").stat().st_mode & 0o777 == 0o600
    again = load_admin_token(env)
    assert again.value == first.value and again.source.startswith("file")
    assert load_admin_token({**env, "CALLGATE_ADMIN_TOKEN": "mine"}).value == "mine"


async def test_no_store_means_503_not_a_crash() -> None:
    from callgate.cli.dashboard import NoLiveCalls
    from callgate.server import ServerContext, admin, build_app

    context = ServerContext(live=NoLiveCalls(), store=None, env={"CALLGATE_ADMIN_TOKEN": TOKEN})
    app = build_app(context, admin.routes)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/api/calls", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 503
    assert "call records are off" in response.json()["error"]
