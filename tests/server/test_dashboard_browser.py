"""The dashboard in a real browser: Debian's Chromium driven by Playwright against `callgate
dashboard` on loopback. Screenshots are kept in test-artifacts/ (git-ignored)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

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
from .serving import ROOT

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is required (`make test` installs Debian's chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, timeout=60_000)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Dashboard, Receiver]]:
    with running_receiver(Receiver(always_status=500)) as receiver:
        db = tmp_path / "calls.db"
        fill_store(db, receiver.url)
        deliver_once(db)
        with running_dashboard(db) as served:
            yield served, receiver


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def log_in(page: Page, dashboard: Dashboard) -> None:
    page.goto(dashboard.url + "/")
    expect(page).to_have_url(f"{dashboard.url}/login?next=%2F")
    page.fill("#token", "not-the-token")
    page.click("#login")
    expect(page.locator("#login-error")).to_be_visible()
    page.fill("#token", TOKEN)
    page.click("#login")
    expect(page.locator("#calls")).to_be_visible()


def test_list_filter_and_open_a_call(browser: Browser, world: tuple[Dashboard, Receiver]) -> None:
    dashboard, _ = world
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, dashboard)
    rows = page.locator("tr.call-row")
    expect(rows).to_have_count(3)
    expect(page.locator("#chart-reasons rect.bar")).not_to_have_count(0)
    expect(page.locator("#live-empty")).to_be_visible()
    shot(page, "list")

    page.select_option("select[name=reason]", "silence-timed-out")
    page.click("#apply")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-call", SILENT_CALL.call_id)
    page.select_option("select[name=reason]", "")
    page.select_option("select[name=transfer]", "completed")
    page.click("#apply")
    expect(rows).to_have_count(1)
    rows.first.locator("a").click()

    expect(page.locator("h1")).to_have_text(f"Call {TRANSFER_CALL.call_id}")
    timeline = page.locator("#timeline")
    for band in ("agent-speech", "caller-speech", "hold", "ring", "consult", "bridge"):
        expect(timeline.locator(f"rect.band-{band}")).not_to_have_count(0)
    expect(timeline.locator("line.mark-transfer")).to_have_count(1)
    # To scale: the consultation (9.1 s → 20 s of a 40 s call) is wider than the ring (5.1 → 9 s).
    ring = timeline.locator("rect.band-ring").first.bounding_box()
    consult = timeline.locator("rect.band-consult").first.bounding_box()
    assert ring is not None and consult is not None and consult["width"] > 2 * ring["width"]
    expect(page.locator("#transcript .bubble.caller")).to_have_text(["4.0sA person please"])
    expect(page.locator("#transfers")).to_contain_text("completed")
    expect(page.locator("#functions")).to_contain_text("lookup_order")
    shot(page, "transfer-call")
    page.close()


def test_redeliver_a_failed_report(browser: Browser, world: tuple[Dashboard, Receiver]) -> None:
    dashboard, receiver = world
    page = browser.new_page()
    log_in(page, dashboard)
    page.goto(f"{dashboard.url}/calls/{GOODBYE_CALL.call_id}")
    expect(page.locator("#reports .report-status")).to_have_text("failed")
    expect(page.locator("#timeline rect.band-agent-speech")).to_have_count(2)
    expect(page.locator("#timeline line.mark-hangup")).to_have_count(1)
    assert "s3cret-pass" not in page.content()
    receiver.always_status = None  # the receiver is back
    page.click("#redeliver")
    expect(page.locator("#redeliver-result")).to_have_text("requeued 1 report(s)")
    # The page reloads itself; the dashboard's outbox worker delivers within its poll interval.
    for _ in range(20):
        page.reload()
        if page.locator("#reports .report-status").inner_text() == "delivered":
            break
        page.wait_for_timeout(500)
    expect(page.locator("#reports .report-status")).to_have_text("delivered")
    assert len(receiver.accepted) == 1
    shot(page, "redelivered")
    page.close()


def test_pages_need_a_session(browser: Browser, world: tuple[Dashboard, Receiver]) -> None:
    dashboard, _ = world
    page = browser.new_page()
    page.goto(f"{dashboard.url}/calls/{GOODBYE_CALL.call_id}")
    expect(page).to_have_url(f"{dashboard.url}/login?next=%2Fcalls%2F{GOODBYE_CALL.call_id}")
    page.goto(f"{dashboard.url}/login?next=//evil.example.com/")
    page.fill("#token", TOKEN)
    page.click("#login")
    expect(page).to_have_url(f"{dashboard.url}/")  # never redirected off the site
    page.close()
