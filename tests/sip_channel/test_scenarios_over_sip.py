"""Example scenario families with a hang-up or a transfer, run over SIP with a real CallRunner:
the same agent documents, scripted models and `expect` blocks as on the sim channel, unchanged."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from callgate.scenario.expect import check

from .peers import rtp_party, sipp
from .runner_harness import sip_agent

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("scenario", "caller"),
    [
        ("ims_hangup.yaml", "agent_hangs_up.xml"),  # IMS text command hang-up, endword played first
        ("ixhello_hangup_tool.yaml", "agent_hangs_up.xml"),  # hangup tool call
        ("transfer_ims_completed.yaml", "refer_accepted.xml"),  # cold transfer by REFER, NOTIFY 200
        ("transfer_sip_refer.yaml", "refer_accepted.xml"),  # SWML sip_refer verb
        ("transfer_ims_rejected.yaml", "refer_declined_then_caller_hangs_up.xml"),  # 603 → rejected
    ],
)
async def test_example_scenario_over_sip(scenario: str, caller: str, tmp_path: Path) -> None:
    async with sip_agent(scenario) as agent, rtp_party() as party:
        call = asyncio.ensure_future(
            sipp(
                caller, agent.endpoint.port, keys={"rtp_port": str(party.port)}, workdir=tmp_path, timeout=25
            )
        )
        while party.remote is None and not call.done():
            await asyncio.sleep(0.02)
        silence = asyncio.ensure_future(party.send_tone(25))  # the caller's line carries silence…
        await agent.perform_turns(party)  # …and, for each turn, a burst of voice
        result = await call
        await asyncio.wait_for(agent.done.wait(), 10)
        silence.cancel()
    assert result.ok, result.errors
    outcome = agent.outcomes[0]
    failures = check(agent.scenario.expect, outcome)
    assert failures == [], failures
    assert agent.model.failures == []
