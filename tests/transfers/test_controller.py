"""CallController's transfer path on the sim channel: policy before anything is said, outcomes and
codes, the warm and hand-off seams, and dynamic destinations from a real loopback routing server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from callgate.agent.decisions import DynamicTarget, Transfer, TransferResult
from callgate.channels.sim import SimWorld
from callgate.control.call_state import CallState
from callgate.control.controller import CallController
from callgate.control.destinations import DestinationClient
from callgate.control.policy import DestinationPolicy, Literals
from callgate.telephony.clock import Clock, VirtualClock, holding, run_virtual
from callgate.timeline import CallOutcome, TransferRecord

from .conftest import RoutingServer

T = TypeVar("T")
CALLER = "+15551230000"
LEGS: dict[str, Any] = {
    "+15550002222": {"answer": True, "after": "2s"},
    "+15550003333": {"answer": "busy"},
    "+15550004444": {"answer": False},
    "+15550005555": {"answer": "reject"},
    "+15550006666": {"answer": True, "after": "20s"},
}
POLICY = Literals(
    destinations={"+15550002222", "+15550003333", "+15550004444", "+15550005555", "+15550006666"}
)


def controller_for(world: SimWorld, **kwargs: Any) -> CallController:
    outcome = CallOutcome(timeline=world.timeline)
    outcome.utterances = world.utterances
    policy = DestinationPolicy(literals=POLICY, caller_number=CALLER)
    return CallController(
        world.caller, world.switch, world.clock, outcome, world.started_at, policy=policy, **kwargs
    )


def sim(body: Callable[[SimWorld, CallController], Awaitable[T]]) -> T:
    async def main(clock: VirtualClock) -> T:
        world = SimWorld(clock, legs=LEGS, from_number=CALLER)
        controller = controller_for(world)
        await controller.answer()
        return await body(world, controller)

    return run_virtual(main)


class HeldTransport(httpx.AsyncHTTPTransport):
    """Virtual time stands still while the real routing server (another thread) answers, as the
    scenario runner does for passthrough URLs; otherwise a busy machine could see a virtual timeout."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with holding(self._clock):
            response = await super().handle_async_request(request)
            await response.aread()
            return response


def kinds(world: SimWorld) -> list[str]:
    return [event.kind for event in world.timeline.events]


def said(world: SimWorld) -> list[str]:
    return [u.text for u in world.utterances]


def test_completed_blind_transfer() -> None:
    async def body(
        world: SimWorld, controller: CallController
    ) -> tuple[TransferResult, list[TransferRecord]]:
        result = await controller.execute_transfer(
            Transfer("+1 (555) 000-2222", "ims", msg="Transferring now.", origin="model")
        )
        return result, controller.outcome.transfers

    result, records = sim(body)
    assert result == TransferResult("completed")
    # What was dialled (and recorded) is the form the policy checked.
    assert records == [TransferRecord("+15550002222", "blind", "completed")]


def test_failure_codes_and_err_msg() -> None:
    async def body(world: SimWorld, controller: CallController) -> list[tuple[str, str]]:
        out = []
        for number in ("+15550003333", "+15550004444", "+15550005555"):
            result = await controller.execute_transfer(Transfer(number, "ims", origin="model"))
            out.append((result.outcome, result.code))
        assert controller.state.state == CallState.ACTIVE  # the caller is still with the agent
        return out

    assert sim(body) == [("failed", "busy"), ("failed", "no-answer"), ("failed", "rejected")]


def test_ims_failure_speaks_the_default_err_msg_but_a_tool_failure_does_not() -> None:
    async def body(world: SimWorld, controller: CallController) -> list[str]:
        await controller.execute_transfer(Transfer("+15550003333", "ims", origin="model"))
        await controller.execute_transfer(Transfer("+15550003333", "builtin", origin="document"))
        return said(world)

    assert sim(body) == ["Sorry, I couldn't transfer your call."]


def test_refusal_dials_nothing_and_says_only_err_msg() -> None:
    async def body(
        world: SimWorld, controller: CallController
    ) -> tuple[TransferResult, list[str], list[str]]:
        result = await controller.execute_transfer(
            Transfer(
                "+19005550199", "ims", msg="Transferring you now.", err_msg="I can't do that.", origin="model"
            )
        )
        return result, kinds(world), said(world)

    result, events, spoken = sim(body)
    assert result == TransferResult("refused", "destination not allowed")
    assert result.for_model() == "Transfer refused: destination not allowed."
    assert "dial" not in events and "transfer" not in events
    assert "transfer-refused" in events
    assert spoken == ["I can't do that."]


def test_forbidden_caller_id_is_refused() -> None:
    async def body(world: SimWorld, controller: CallController) -> tuple[TransferResult, list[str]]:
        result = await controller.execute_transfer(
            Transfer("+15550002222", "ims", caller_id="+14155550100", origin="model")
        )
        return result, kinds(world)

    result, events = sim(body)
    assert result == TransferResult("refused", "caller ID not allowed")
    assert "dial" not in events


def test_caller_id_reaches_the_dial() -> None:
    async def body(world: SimWorld, controller: CallController) -> dict[str, Any]:
        await controller.execute_transfer(Transfer("+15550002222", "ims", caller_id=CALLER, origin="model"))
        (dial,) = world.timeline.of_kind("dial")
        return dial.data

    assert sim(body)["caller_id"] == CALLER


def test_warm_seam() -> None:
    async def body(world: SimWorld, controller: CallController) -> list[Any]:
        unavailable = await controller.execute_transfer(Transfer("+15550002222", "builtin", mode="warm"))
        seen: list[Transfer] = []

        async def warm(decision: Transfer) -> TransferResult:
            seen.append(decision)
            return TransferResult("failed", "declined: busy day")

        controller._warm = warm
        refused = await controller.execute_transfer(
            Transfer("+19005550199", "builtin", mode="warm", origin="model")
        )
        handled = await controller.execute_transfer(Transfer("+15550002222", "builtin", mode="warm"))
        return [unavailable, refused, handled, [d.destination for d in seen]]

    unavailable, refused, handled, seen = sim(body)
    assert unavailable == TransferResult("failed", "warm transfer unavailable")
    assert refused.outcome == "refused"  # the policy runs before the warm transfer is started
    assert handled == TransferResult("failed", "declined: busy day")
    assert seen == ["+15550002222"]


def test_check_destination_for_redirects() -> None:
    async def body(world: SimWorld, controller: CallController) -> list[TransferResult | None]:
        return [
            controller.check_destination("+15550002222", "model"),
            controller.check_destination("+19005550199", "model"),
        ]

    assert sim(body) == [None, TransferResult("refused", "destination not allowed")]


def test_caller_hanging_up_while_it_rings_cancels() -> None:
    async def body(world: SimWorld, controller: CallController) -> tuple[TransferResult, str | None]:
        async def leave() -> None:
            await world.clock.sleep(5)
            await world.caller.remote_hangup()

        task = asyncio.create_task(leave())
        result = await controller.execute_transfer(Transfer("+15550006666", "ims", origin="model"))
        await task
        return result, controller.outcome.ended_reason

    result, ended = sim(body)
    assert result.outcome == "cancelled"
    assert ended == "customer-ended-call"


def test_hand_off_seam() -> None:
    async def body(world: SimWorld, controller: CallController) -> list[TransferResult]:
        controller.policy.literals.assistants.add("billing")
        missing = await controller.execute_transfer(Transfer("assistant:billing", "builtin"))

        async def hand_off(decision: Transfer) -> TransferResult:
            return TransferResult("completed")

        controller._handoff = hand_off
        done = await controller.execute_transfer(
            Transfer("assistant:billing", "builtin", msg="Bea will help.")
        )
        unknown = await controller.execute_transfer(Transfer("assistant:nobody", "builtin"))
        assert controller.live  # a hand-off keeps the call with callgate
        assert said(world) == ["Bea will help."]
        return [missing, done, unknown]

    missing, done, unknown = sim(body)
    assert missing.outcome == "failed" and "unavailable" in missing.code
    assert done == TransferResult("completed")
    assert unknown == TransferResult("refused", "destination not allowed")


def test_dynamic_destination_from_a_real_server(routing_server: RoutingServer) -> None:
    answers = [
        {
            "destination": {"type": "number", "number": "+15557770000", "callerId": "+15559990000"},
            "message": "Hold on.",
        },
        {"error": "Nobody is in."},
        {"destination": {"type": "assistant", "assistantName": "ghost"}},
    ]

    async def body(world: SimWorld, controller: CallController) -> list[TransferResult]:
        # A server destination is allowed although the document never names it.
        world.switch.legs["+15557770000"] = world.switch.legs["+15550005555"]
        results = []
        async with httpx.AsyncClient(transport=HeldTransport(world.clock)) as http:
            controller.destinations = DestinationClient(http, allow_private=True)
            for answer in answers:
                routing_server.reply_json(answer)
                target = DynamicTarget(url=routing_server.url, timeout=5.0)
                results.append(
                    await controller.execute_transfer(
                        Transfer("", "builtin", dynamic=target, origin="server")
                    )
                )
        return results

    rejected, error, ghost = run_virtual(lambda clock: _with_world(clock, body))
    assert rejected == TransferResult("failed", "rejected")  # dialled with the server's caller ID
    assert error == TransferResult("failed", "destination-error: Nobody is in.")
    assert ghost.outcome == "failed" and "unknown assistant" in ghost.code
    first = routing_server.received[0].json["message"]
    assert first["type"] == "transfer-destination-request"
    assert first["customer"]["number"] == CALLER
    assert isinstance(first["timestamp"], int)


async def _with_world(clock: VirtualClock, body: Callable[[SimWorld, CallController], Awaitable[T]]) -> T:
    world = SimWorld(clock, legs=LEGS, from_number=CALLER)
    controller = controller_for(world)
    await controller.answer()
    result = await body(world, controller)
    dial = world.timeline.of_kind("dial")
    assert json.dumps([d.data for d in dial])  # recorded, serialisable
    return result


def test_transfer_before_answer_answers_first() -> None:
    async def main(clock: VirtualClock) -> tuple[TransferResult, list[str]]:
        world = SimWorld(clock, legs=LEGS, from_number=CALLER)
        controller = controller_for(world)  # still ringing: SWML `connect` as the first verb
        result = await controller.execute_transfer(Transfer("+15550002222", "swml"))
        return result, kinds(world)

    result, events = run_virtual(main)
    assert result == TransferResult("completed")
    assert events.index("answered") < events.index("transfer-start")
