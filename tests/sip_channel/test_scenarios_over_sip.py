"""Example scenario families with a hang-up or a transfer, run over SIP with a real CallRunner:
the same agent documents, scripted models and `expect` blocks as on the sim channel, unchanged."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from callgate.scenario.expect import check

from .peers import free_udp_port, listening, rtp_party, sipp, tone_share
from .runner_harness import local_hold_music, sip_agent

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("scenario", "caller"),
    [
        # the REFER itself answered 603 (no NOTIFY) → rejected; the other families run in
        # test_scenario_families_over_sip.py with a caller that follows REFERs
        ("transfer_ims_rejected.yaml", "refer_declined_then_caller_hangs_up.xml"),
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


async def test_warm_transfer_to_a_busy_supervisor_over_sip(tmp_path: Path) -> None:
    """Warm transfer: the caller is held by re-INVITE (with hold music from a local file), the
    supervisor is dialled through the trunk, which answers 486; the caller comes back (re-INVITE)
    and hears why; the scenario's expectations hold unchanged."""
    trunk_port = free_udp_port()
    proxy = f"sip:callgate:secret@127.0.0.1:{trunk_port}"
    async with (
        sip_agent("warm_busy.yaml", proxy=proxy, hold_music=local_hold_music(tmp_path)) as agent,
        rtp_party() as party,
    ):
        trunk = asyncio.ensure_future(sipp("callee_busy.xml", 0, uas=True, port=trunk_port, workdir=tmp_path))
        await listening(trunk_port)
        call = asyncio.ensure_future(
            sipp(
                "hold_unhold.xml",
                agent.endpoint.port,
                keys={"rtp_port": str(party.port)},
                workdir=tmp_path,
                timeout=25,
            )
        )
        while party.remote is None and not call.done():
            await asyncio.sleep(0.02)
        silence = asyncio.ensure_future(party.send_tone(25))
        await agent.perform_turns(party)
        result, trunk_result = await asyncio.gather(call, trunk)
        await asyncio.wait_for(agent.done.wait(), 10)
        silence.cancel()
    assert result.ok, result.errors  # held and resumed by re-INVITE, each 2xx ACKed, then our BYE
    assert trunk_result.ok, trunk_result.errors
    failures = check(agent.scenario.expect, agent.outcomes[0])
    assert failures == [], failures


async def test_warm_transfer_briefs_the_supervisor_then_bridges_over_sip(tmp_path: Path) -> None:
    """Seed 001 over SIP: hold by re-INVITE, a summary, the supervisor dialled through the trunk and
    briefed by the consult agent, who hears "put her through"; the bridge resumes the caller's
    media (re-INVITE) and relays both ways; the caller's BYE ends the supervisor's leg too."""
    trunk_port = free_udp_port()
    proxy = f"sip:callgate:secret@127.0.0.1:{trunk_port}"
    async with (
        sip_agent("warm_connect.yaml", proxy=proxy, hold_music=local_hold_music(tmp_path)) as agent,
        rtp_party() as caller_media,
        rtp_party() as supervisor_media,
    ):
        supervisor = asyncio.ensure_future(
            sipp(
                "callee_answers.xml",
                0,
                uas=True,
                port=trunk_port,
                keys={"rtp_port": str(supervisor_media.port)},
                workdir=tmp_path,
                timeout=25,
            )
        )
        await listening(trunk_port)
        caller = asyncio.ensure_future(
            sipp(
                "held_then_bridged.xml",
                agent.endpoint.port,
                keys={"rtp_port": str(caller_media.port)},
                workdir=tmp_path,
                timeout=25,
            )
        )
        while caller_media.remote is None and not caller.done():
            await asyncio.sleep(0.02)
        lines = [  # both lines carry silence between the parties' words
            asyncio.ensure_future(caller_media.send_tone(25)),
            asyncio.ensure_future(supervisor_media.send_tone(25)),
        ]
        briefing = asyncio.ensure_future(agent.perform_leg_turns("+15550002222", supervisor_media))
        await agent.perform_turns(caller_media)
        await asyncio.wait_for(briefing, 20)
        await asyncio.wait_for(agent.done.wait(), 15)
        bridged_at = time.time()
        caller_media.frequency = 600  # bridged now: the caller and the supervisor talk
        supervisor_media.frequency = 1400
        lines += [
            asyncio.ensure_future(caller_media.send_tone(1.5)),
            asyncio.ensure_future(supervisor_media.send_tone(1.5)),
        ]
        caller_result, supervisor_result = await asyncio.gather(caller, supervisor)
        for line in lines:
            line.cancel()
    assert caller_result.ok, caller_result.errors
    assert supervisor_result.ok, supervisor_result.errors
    failures = check(agent.scenario.expect, agent.outcomes[0])
    assert failures == [], failures
    assert tone_share(supervisor_media.audio(since=bridged_at), 600) > 0.2  # the caller, relayed
    assert tone_share(caller_media.audio(since=bridged_at), 1400) > 0.2  # and the other way
