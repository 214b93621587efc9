"""The example scenarios with a hang-up or a transfer, over SIP (DESIGN §6, §8; issue 8 item 4).

Each runs with its own agent document, scripted model, HTTP stubs and `expect` block, unchanged,
on the real SIP channel: sipp is the caller (scripted_caller.xml, with the scenario's caller ID)
and follows our REFERs, answering each with the NOTIFY outcome its transferee would have given —
read from the scenario's `expect.transfer` and `legs` — takes hold/unhold re-INVITEs, and hangs
up when the scenario's `hangup` turn comes. Warm transfers dial through `--sip-proxy`: a sipp
trunk plays the supervisors. Besides the scenario's expectations, the wire is checked: who sent
the BYE, that our BYE came after the agent's last voice frame, where each REFER pointed, which
numbers the trunk was asked for. Timers that run minutes on the virtual clock (hard stop,
silence, ring and consult timeouts) are shortened in the agent document, the only change; a
`wait` between turns ends once the caller is back from hold or transfer (see
`SipAgent._wait`). The calls run six at a time, each on its own endpoint, as a server takes
many calls at once; a failure names every family that failed and why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from callgate.scenario.expect import check
from callgate.scenario.format import Scenario

from .peers import RtpParty, SippResult, free_udp_port, hang_up_cue, listening, rtp_party, sipp, until
from .runner_harness import SipAgent, local_hold_music, sip_agent

pytestmark = pytest.mark.timeout(90)
T = TypeVar("T")
CONCURRENT = 6  # calls at a time: the runs are real time, mostly waiting
FAMILY_DEADLINE = 120.0  # seconds one family's call may take on a loaded machine

# What the transferee's INVITE got, as the sipfrag of the final NOTIFY (DESIGN §3 outcomes).
NOTIFY_FOR = {
    "completed": "200 OK",
    "busy": "486 Busy Here",
    "no-answer": "480 Temporarily Unavailable",
    "rejected": "603 Decline",
}


@dataclass(frozen=True)
class Family:
    scenario: str
    bye_from: str  # "agent" | "caller": who hangs up on the wire
    refer_to: tuple[str, ...] = ()  # the Refer-To URIs, in order (start of the URI)
    replace: dict[str, str] = field(default_factory=dict)  # shortened timers in the agent document

    def __str__(self) -> str:
        return self.scenario.removesuffix(".yaml")


# A transferee that fails the way its scenario leg does (`legs.<to>.answer`).
NOTIFY_FOR_LEG = {"busy": "486 Busy Here", "reject": "603 Decline", False: "480 Temporarily Unavailable"}


def refer_outcomes(scenario: Scenario) -> list[str]:
    """The final NOTIFY for each REFER the scenario implies, in order ("none": the caller leaves
    while it rings). Refused transfers and destination errors never reach the wire."""
    outcomes: list[str] = []
    for transfer in scenario.expect.transfer:
        leg = scenario.legs.get(transfer.to or "")
        if transfer.result == "completed":
            outcomes.append(NOTIFY_FOR["completed"])
        elif transfer.result == "cancelled":
            outcomes.append("none")
        elif transfer.result == "failed" and transfer.reason in NOTIFY_FOR:
            outcomes.append(NOTIFY_FOR[transfer.reason])
        elif transfer.result == "failed" and leg is not None and leg.answer in NOTIFY_FOR_LEG:
            outcomes.append(NOTIFY_FOR_LEG[leg.answer])
    if not outcomes and scenario.expect.ended == "assistant-forwarded-call":
        outcomes.append(NOTIFY_FOR["completed"])  # a transfer the scenario checks only by its end
    return outcomes


FAMILIES = [
    # hang-ups
    Family("ims_hangup.yaml", "agent"),  # IMS text command hang-up, endword played first
    Family("ixhello_hangup_tool.yaml", "agent"),  # hangup tool call
    Family("end_call_phrase.yaml", "agent"),  # end_call_phrases match → assistant-said-end-call-phrase
    Family("hard_stop.yaml", "agent", replace={"hard_stop_time: 2m": "hard_stop_time: 6s"}),
    Family(
        "ixhello_silence.yaml", "agent", replace={"inactivity_timeout: 30000": "inactivity_timeout: 3000"}
    ),
    Family(
        "attention_then_inactivity.yaml",
        "agent",
        replace={
            "attention_timeout: 10000": "attention_timeout: 2000",
            "inactivity_timeout: 25000": "inactivity_timeout: 5000",
        },
    ),
    Family("post_process_hangup.yaml", "agent"),  # SWAIG hangup action after the model's reply
    Family("post_process_data_map.yaml", "agent"),  # data_map output with post_process + hangup
    Family("webhook_say_hangup.yaml", "agent"),  # SWAIG say + hangup actions
    Family("function_map_repeated.yaml", "agent"),  # IMS function_map hang-up tool, repeated chunks
    Family("hooks_startup_and_hangup.yaml", "agent"),  # startup/hangup hooks around a hang-up
    Family("static_greeting.yaml", "agent"),  # SWML play + hangup after the AI
    Family("voicemail.yaml", "agent"),
    Family("seed004_context_switch.yaml", "agent"),
    Family("llm_down.yaml", "agent"),  # the model endpoint is down → apology, pipeline-error
    Family("caller_hangs_up_mid_turn.yaml", "caller"),  # customer-ended-call
    Family(
        "transfer_dynamic_assistant.yaml", "agent"
    ),  # transfer to another agent document, then its hang-up
    # blind transfers (REFER)
    Family("transfer_ims_completed.yaml", "agent", refer_to=("sip:+15550002222@",)),  # NOTIFY 200
    Family("transfer_sip_refer.yaml", "agent", refer_to=("sip:support@pbx.example.com",)),  # SWML sip_refer
    Family("transfer_ims_busy.yaml", "agent", refer_to=("sip:+15550002222@",)),  # NOTIFY 486 → busy
    Family("transfer_ims_no_answer.yaml", "caller", refer_to=("sip:+15550002222@",)),  # NOTIFY 480
    Family("transfer_ims_caller_hangs_up.yaml", "caller", refer_to=("sip:+15550002222@",)),  # cancelled
    Family("transfer_ims_injected_number.yaml", "agent"),  # refused by the destination policy: no REFER
    Family("transfer_ims_forbidden_caller_id.yaml", "caller"),  # refused: caller ID
    Family(
        "transfer_swml_transfer_verb.yaml",
        "agent",
        refer_to=("sip:support@pbx.example.com", "sip:+15550003333@"),
    ),  # SWML transfer verb: the first destination rejects, the next completes
    Family(
        "transfer_swml_webhook.yaml", "agent", refer_to=("sip:+15557770000@",)
    ),  # SWML from a SWAIG webhook
    Family("transfer_builtin_list.yaml", "agent", refer_to=("sip:+15550002222@",)),
    Family("transfer_builtin_list_busy.yaml", "caller", refer_to=("sip:support@pbx.example.com",)),
    Family("transfer_builtin_table.yaml", "agent", refer_to=("sip:+15550003333@",)),
    Family("transfer_data_map_webhook.yaml", "agent", refer_to=("sip:+15558880000@",)),  # data_map transfer
    Family("transfer_data_map_args_refused.yaml", "agent", refer_to=("sip:+15550004444@",)),
    Family(
        "transfer_dynamic_number.yaml", "agent", refer_to=("sip:+15556660000@",)
    ),  # transfer.destination_url
    Family("transfer_dynamic_sip.yaml", "agent", refer_to=("sip:desk@pbx.example.com",)),
    Family("transfer_dynamic_error.yaml", "caller"),  # destination_url says no: destination-error
    Family("expressions_transfer.yaml", "agent", refer_to=("sip:+1YYYYYYYYYY@",)),
    Family("seed004_joke_transfer.yaml", "agent", refer_to=("sip:+1XXXXXXXXXX@",)),
    Family("seed004_swml_sms_transfer.yaml", "agent", refer_to=("sip:+1XXXXXXXXXX@",)),
    Family("policy_server_caller_id_from_model.yaml", "caller"),  # refused: caller ID from the model
    Family("ims_hangup_chunked.yaml", "agent"),
    Family("ims_hangup_with_function.yaml", "agent"),
    Family("ims_bad_command.yaml", "agent"),
    Family("seed004_blabbermouth.yaml", "agent"),
    Family("hooks_caller_hangs_up.yaml", "caller"),  # the hangup hook after the caller's BYE
    Family("hooks_is_hangup_hook.yaml", "caller"),
    Family("end_call_phrases_off.yaml", "caller"),
    Family("contexts_next_step_order.yaml", "agent"),
    Family("llm_garbage.yaml", "agent"),
    Family("llm_server_error.yaml", "agent"),
    Family("llm_stream_cut.yaml", "agent"),
    Family(
        "ixhello_no_tool.yaml", "agent", replace={"inactivity_timeout: 45000": "inactivity_timeout: 4500"}
    ),
    Family("transfer_dynamic_garbage.yaml", "caller"),
    Family("transfer_dynamic_server_down.yaml", "caller"),
    Family("transfer_dynamic_server_error.yaml", "caller"),
    Family(
        "transfer_dynamic_timeout.yaml",
        "caller",
        replace={"destination_timeout: 5": "destination_timeout: 2"},
    ),
    Family("transfer_builtin_list_refused.yaml", "caller"),
    Family("policy_echoing_lookup_args.yaml", "caller"),
    Family("policy_echoing_lookup_response.yaml", "caller"),
    Family("transfer_data_map_webhook_args_refused.yaml", "caller"),
    Family("seed004_data_map_webhook_transfer.yaml", "agent", refer_to=("sip:+15550003333@",)),
    Family("seed004_swml_sms_webhook.yaml", "agent", refer_to=("sip:+15550001111@",)),
    Family("seed004_swml_webhook_transfer.yaml", "agent", refer_to=("sip:+1XXXXXXXXXX@",)),
    Family("expressions_transfer_busy.yaml", "caller", refer_to=("sip:+1XXXXXXXXXX@",)),
    Family("expressions_transfer_unknown.yaml", "caller"),
    Family("transfer_leg_spelling.yaml", "agent", refer_to=("sip:+15550002222@",)),
    Family("hangup_300_times.yaml", "agent"),
    Family("ims_hangup_then_stream_cut.yaml", "agent"),
    Family("llm_rate_limited.yaml", "agent"),
    Family("llm_stall.yaml", "agent"),
    Family("llm_stall_mid_reply.yaml", "agent"),
    Family("hold_action.yaml", "caller", replace={"hold: 20": "hold: 3"}),  # SWAIG hold: re-INVITEs
    Family("hold_action_caller_leaves.yaml", "caller"),
    Family("post_process_say_then_continue.yaml", "caller"),
    Family("seed004_includes.yaml", "caller"),
    Family("contexts_refusals.yaml", "caller"),
    Family("contexts_change_context_billing.yaml", "caller"),
    Family("contexts_actions_and_skip_user_turn.yaml", "caller"),
    Family("fillers_fast_function.yaml", "caller"),
    Family("guard_unicode_dot_webhook.yaml", "caller"),
    Family("long_call_sliding_window.yaml", "caller"),
    Family("barge_in_cuts_agent.yaml", "caller"),  # the caller talks over the agent: cut, answered
    Family("barge_in_goodbye_not_cut.yaml", "agent"),  # a goodbye is never cut
    Family("barge_in_off.yaml", "caller"),
    Family("barge_in_post_process_hangup.yaml", "agent"),
    Family("fillers_slow_function.yaml", "caller"),
    Family("fmt_ph_read_back.yaml", "caller"),
    Family("report_delivered.yaml", "agent"),  # the post-call report reaches its (stubbed) receiver
    Family("report_app_name.yaml", "caller"),
    Family("report_conversation_id.yaml", "caller"),
]


def bye_failures(bye_from: str, caller: SippResult) -> list[str]:
    """Who hung up, as the caller's side of the wire shows it."""
    sent_bye = any(block.startswith("BYE ") for block in caller.sent)
    received_bye = any(block.startswith("BYE ") for block in caller.received)
    if bye_from == "agent" and not (received_bye and not sent_bye):
        return [f"expected our BYE (received {received_bye}, caller sent {sent_bye})"]
    if bye_from == "caller" and not (sent_bye and not received_bye):
        return [f"expected the caller's BYE (received {received_bye}, caller sent {sent_bye})"]
    return []


def wire_failures(family: Family, caller: SippResult, party: RtpParty) -> list[str]:
    """What the caller's side of the wire shows against what the family promises: who hung up,
    that our BYE came after the last of the agent's voice had reached the caller, and where each
    REFER pointed."""
    failures = bye_failures(family.bye_from, caller)
    byes = [at for at, text in caller.logged("received") if text.startswith("BYE ")]
    voice = party.last_voice_at()
    if family.bye_from == "agent" and byes and (voice is None or voice > byes[0]):
        failures.append(f"our BYE at {byes[0]:.3f} came before the agent's last voice frame at {voice}")
    targets = [
        line.split(":", 1)[1].strip().strip("<>")
        for block in caller.received
        if block.startswith("REFER ")
        for line in block.splitlines()
        if line.lower().startswith("refer-to:")
    ]
    if len(targets) != len(family.refer_to) or not all(
        target.startswith(prefix) for target, prefix in zip(targets, family.refer_to, strict=False)
    ):
        failures.append(f"REFER targets {targets}, expected {list(family.refer_to)}")
    return failures


async def scripted_caller(
    agent: SipAgent, party: RtpParty, workdir: Path, outcomes: list[str]
) -> tuple[int, asyncio.Future[SippResult]]:
    """sipp calling the agent with scripted_caller.xml (its SIP port, its run), once the call's
    media flows; `outcomes`: the final NOTIFY for the first REFER and for any later ones."""
    caller_port = free_udp_port()
    who = agent.scenario.call  # who calls whom, as the scenario says
    keys = {
        "rtp_port": str(party.port),
        "from_number": who.from_number,
        "to_number": who.to_number,
        "caller_name": who.caller_name,
        "first_refer_outcome": outcomes[0],
        "refer_outcome": outcomes[-1],
    }
    caller = asyncio.ensure_future(
        sipp(
            "scripted_caller.xml",
            agent.endpoint.port,
            keys=keys,
            port=caller_port,
            workdir=workdir,
            timeout=40,
        )
    )
    await until(lambda: party.remote is not None or caller.done(), 10, "the caller's media")
    return caller_port, caller


async def run_family(family: Family, workdir: Path) -> list[str]:
    """One call of `family` over SIP; what went wrong (nothing: it passed)."""
    workdir.mkdir()
    async with sip_agent(family.scenario, replace=family.replace) as agent, rtp_party() as party:
        outcomes = refer_outcomes(agent.scenario) or ["none"]
        caller_port, call = await scripted_caller(agent, party, workdir, outcomes)
        silence = asyncio.ensure_future(party.send_tone(60))  # the caller's line carries silence…
        try:
            await agent.perform_turns(party, caller_port)  # …and, for each turn, a burst of voice
            result = await call
            await asyncio.wait_for(agent.done.wait(), 30)
        finally:
            silence.cancel()
    if not result.ok:
        return [f"sipp caller: {result.errors}"]
    failures = check(agent.scenario.expect, agent.outcomes[0]) + wire_failures(family, result, party)
    return failures + agent.model.failures


async def run_all(run: Callable[[T, Path], Awaitable[list[str]]], families: list[T], workdir: Path) -> None:
    """Run the families' calls CONCURRENT at a time (each with its own endpoint, model and sipp
    peers, as one `callgate serve` takes many calls); fail listing every family that failed."""
    gate = asyncio.Semaphore(CONCURRENT)

    async def one(family: T) -> list[str]:
        async with gate:
            try:
                return await asyncio.wait_for(run(family, workdir / str(family)), FAMILY_DEADLINE)
            except Exception as error:  # a family's crash or timeout is that family's failure
                return [f"{type(error).__name__}: {error!r}"]

    results = await asyncio.gather(*(one(family) for family in families))
    failed = {str(family): result for family, result in zip(families, results, strict=True) if result}
    assert failed == {}, failed


@pytest.mark.timeout(600)
async def test_scenario_families_over_sip(tmp_path: Path) -> None:
    await run_all(run_family, FAMILIES, tmp_path)


async def test_swml_hangup_before_answer_refuses_the_invite_over_sip(tmp_path: Path) -> None:
    """SWML `hangup` before anything answers: the INVITE gets 603 (ACKed), no call is set up."""
    async with sip_agent("swml_reject_before_answer.yaml") as agent:
        result = await sipp(
            "caller_refused.xml", agent.endpoint.port, keys={"rtp_port": "9"}, workdir=tmp_path
        )
        await asyncio.wait_for(agent.done.wait(), 30)
    assert result.ok, result.errors
    assert check(agent.scenario.expect, agent.outcomes[0]) == []
    assert agent.model.failures == []


@dataclass(frozen=True)
class WarmFamily:
    scenario: str
    trunk: str  # the sipp script of the party (or parties) dialled through the trunk
    dialled: tuple[str, ...]  # the numbers in the INVITEs the trunk gets, in order
    bye_from: str  # who ends the caller's leg on the wire: "agent" | "caller"
    replace: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.scenario.removesuffix(".yaml")


WARM_FAMILIES = [
    # the supervisor's phone rings past ring_timeout: CANCEL, the caller is resumed and told
    WarmFamily(
        "warm_no_answer.yaml",
        "callee_rings_forever.xml",
        ("+15550002222",),
        "caller",
        replace={"ring_timeout: 20": "ring_timeout: 3"},
    ),
    # the caller hangs up on hold while the supervisor rings: the dial is cancelled
    WarmFamily("warm_caller_hangs_up_held.yaml", "callee_rings_forever.xml", ("+15550002222",), "caller"),
    # the supervisor answers, hears the briefing and declines; we hang up on the supervisor
    WarmFamily("warm_decline.yaml", "scripted_callee.xml", ("+15550002222",), "caller"),
    # the supervisor hangs up during the briefing (their BYE)
    WarmFamily("warm_supervisor_hangs_up.yaml", "scripted_callee.xml", ("+15550002222",), "caller"),
    # the supervisor answers and never decides: consult_timeout brings the caller back
    WarmFamily(
        "warm_consult_timeout.yaml",
        "scripted_callee.xml",
        ("+15550002222",),
        "caller",
        replace={"consult_timeout: 60": "consult_timeout: 4"},
    ),
    WarmFamily("warm_introduction.yaml", "scripted_callee.xml", ("billing",), "caller"),
    WarmFamily(
        "warm_summary_timeout.yaml",
        "scripted_callee.xml",
        ("+15550002222",),
        "caller",
        replace={"summary_timeout: 8": "summary_timeout: 2"},
    ),
    WarmFamily("warm_caller_hangs_up_briefing.yaml", "scripted_callee.xml", ("+15550002222",), "caller"),
    WarmFamily("warm_redirect_refused.yaml", "scripted_callee.xml", ("+15550002222",), "caller"),
    WarmFamily(
        "warm_hard_stop_while_briefing.yaml",
        "scripted_callee.xml",
        ("+15550002222",),
        "agent",
        replace={"hard_stop_time: 10s": "hard_stop_time: 6s"},
    ),
    # the first supervisor is busy; the agent tries another, who takes the call
    WarmFamily(
        "warm_retry_after_busy.yaml", "trunk_one_line_busy.xml", ("+15550002222", "+15550003333"), "caller"
    ),
    # the supervisor redirects to a colleague, who takes the call (two INVITEs through the trunk)
    WarmFamily("warm_redirect.yaml", "scripted_callee.xml", ("+15550002222", "+15550003333"), "caller"),
]


async def run_warm_family(family: WarmFamily, tmp_path: Path) -> list[str]:
    """Warm transfer outcomes over SIP: the caller is held and resumed by re-INVITE (hold music
    from a local file), the supervisor is dialled through `--sip-proxy` (a sipp trunk) and talks
    to the consult agent in tones; the scenario's expectations hold unchanged, and the trunk saw
    an INVITE for each number dialled."""
    tmp_path.mkdir()
    trunk_port = free_udp_port()
    proxy = f"sip:callgate:secret@127.0.0.1:{trunk_port}"
    async with (
        sip_agent(
            family.scenario, proxy=proxy, replace=family.replace, hold_music=local_hold_music(tmp_path)
        ) as agent,
        rtp_party() as caller_media,
        rtp_party() as supervisor_media,
    ):
        trunk = asyncio.ensure_future(
            sipp(
                family.trunk,
                0,
                uas=True,
                port=trunk_port,
                calls=len(family.dialled),
                keys={"rtp_port": str(supervisor_media.port)},
                workdir=tmp_path,
                timeout=40,
            )
        )
        await listening(trunk_port)
        caller_port, caller = await scripted_caller(agent, caller_media, tmp_path, ["none"])
        lines = [  # both lines carry silence between the parties' words
            asyncio.ensure_future(caller_media.send_tone(45)),
            asyncio.ensure_future(supervisor_media.send_tone(45)),
        ]
        briefings = [
            asyncio.ensure_future(agent.perform_leg_turns(name, supervisor_media, trunk_port))
            for name in agent.scenario.legs
            if agent.scenario.leg_turns(name)
        ]
        try:
            await agent.perform_turns(caller_media, caller_port)
            await asyncio.wait_for(agent.done.wait(), 30)
            for briefing in briefings:
                briefing.cancel()
            if agent.callers and not agent.callers[0].ended:
                hang_up_cue(agent.callers[0].call_id, caller_port)  # bridged: the caller leaves when done
            caller_result, trunk_result = await asyncio.gather(caller, trunk)
        finally:
            for task in [*lines, *briefings]:
                task.cancel()
    if not (caller_result.ok and trunk_result.ok):
        return [f"sipp caller: {caller_result.errors}", f"sipp trunk: {trunk_result.errors}"]
    failures = check(agent.scenario.expect, agent.outcomes[0])
    failures += bye_failures(family.bye_from, caller_result)
    dialled = [invite.split(" ")[1] for invite in trunk_result.received if invite.startswith("INVITE ")]
    if [uri.removeprefix("sip:").split("@")[0] for uri in dialled] != list(family.dialled):
        failures.append(f"the trunk got INVITEs for {dialled}, expected {list(family.dialled)}")
    return failures + agent.model.failures


@pytest.mark.timeout(600)
async def test_warm_transfer_families_over_sip(tmp_path: Path) -> None:
    await run_all(run_warm_family, WARM_FAMILIES, tmp_path)
