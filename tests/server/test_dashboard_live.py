"""A live call on the dashboard: `callgate serve --sip --http` with a scripted model, a sipp caller,
and Debian's Chromium watching the call appear in the live table, end, and land in the call list."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Browser, expect, sync_playwright

from .peers import ModelThread, Sipp
from .serving import serving
from .test_dashboard_browser import CHROMIUM, CHROMIUM_FLAGS, shot

TOKEN = "live-dashboard-token"
LONG_GREETING = (
    "Hello, this is Frank from Acme Support. Thank you for calling. We are open from nine in the morning "
    "until six in the evening on weekdays, and from ten until four on Saturdays."
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, timeout=60_000)
        try:
            yield launched
        finally:
            launched.close()


def test_a_live_call_appears_ends_and_is_listed(browser: Browser, tmp_path: Path) -> None:
    script = {"agent": [{"text": f'{LONG_GREETING} <imsagent_hangup endword="Goodbye!"/>'}]}
    with ModelThread(script) as model:
        agent = tmp_path / "agent.yaml"
        document = {
            "ai": {"prompt": {"text": "You are Frank."}, "params": {"llm_base_url": model.base_url("agent")}}
        }
        agent.write_text(yaml.safe_dump({"sections": {"main": [document]}}))
        env = {"CALLGATE_DB": str(tmp_path / "calls.db"), "CALLGATE_ADMIN_TOKEN": TOKEN}
        with serving(agent, http=True, sip=True, env=env) as served:
            assert served.sip_port is not None
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{served.http_port}/login")
            page.fill("#token", TOKEN)
            page.click("#login")
            expect(page.locator("#live-empty")).to_be_visible()

            call = Sipp("agent_hangs_up.xml", served.sip_port, tmp_path, timeout=60, caller="+15551230000")
            try:
                live = page.locator("#live-rows tr")
                expect(live).to_have_count(1, timeout=20_000)  # it appears without a reload (SSE)
                expect(live.first).to_contain_text("+15551230000")
                expect(live.first.locator("button.hangup")).to_be_visible()
                shot(page, "live-call")
                expect(live).to_have_count(0, timeout=60_000)  # the agent hung up after its goodbye
                assert call.wait() == 0, call.explain()
            finally:
                if call.process.poll() is None:
                    call.process.kill()
            served.wait_log(msg="call recorded")
            page.reload()
            row = page.locator("tr.call-row")
            expect(row).to_have_count(1)
            expect(row.first).to_contain_text("assistant-ended-call")
            row.first.locator("a").click()
            expect(page.locator("#timeline rect.band-agent-speech")).not_to_have_count(0)
            expect(page.locator("#timeline line.mark-hangup")).to_have_count(1)
            # The transcript is what the caller heard: the endword, never the command markup.
            expect(page.locator("#transcript")).to_contain_text("Goodbye!")
            expect(page.locator("#transcript")).not_to_contain_text("imsagent")
            shot(page, "live-call-recorded")
            page.close()
