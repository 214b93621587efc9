"""Wires warm transfer into one call: summary and consult models, config look-up, the consult agents.

`install_warm(host)` builds the call's `WarmTransfer` and hands it to the controller (its `_warm`
seam), so control never imports the runtime (DESIGN §2). The host is described by `WarmHost`, so this
module never imports the call runner that installs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from callgate.agent.decisions import Transfer, TransferResult
from callgate.agent.history import Conversation
from callgate.control.controller import CallController
from callgate.control.warm.consult import ConsultSession
from callgate.control.warm.summary import Summary, summarize
from callgate.control.warm.transfer import WarmTransfer
from callgate.llm.client import ChatModel
from callgate.llm.factory import model_settings
from callgate.runtime.consult import ConsultAgent, ConsultRegistry, consult_instructions
from callgate.swaig.runtime import FunctionRuntime
from callgate.swaig.urlguard import Guard
from callgate.swml.models import AI, Document, Function, TransferConfig
from callgate.telephony.base import Call
from callgate.telephony.clock import Clock
from callgate.timeline import CallOutcome


class WarmSetup(Protocol):
    """What warm transfer needs of a call's set-up (`CallSetup`)."""

    @property
    def document(self) -> Document: ...
    @property
    def model_for(self) -> Callable[[str, AI], ChatModel]: ...
    @property
    def env(self) -> dict[str, str]: ...


class WarmHost(Protocol):
    """What warm transfer needs of the call it runs in (`CallRunner`)."""

    @property
    def setup(self) -> WarmSetup: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def outcome(self) -> CallOutcome: ...
    @property
    def started_at(self) -> float: ...
    @property
    def controller(self) -> CallController: ...
    @property
    def consults(self) -> ConsultRegistry: ...
    @property
    def ai(self) -> AI | None: ...
    @property
    def functions(self) -> FunctionRuntime | None: ...
    @property
    def conversation(self) -> Conversation | None: ...
    def caller_went_on_hold(self) -> None: ...
    def guard(self) -> Guard: ...


def _warm_functions(ai: AI | None) -> list[Function]:
    if ai is None:
        return []
    return [
        function
        for function in ai.SWAIG.functions
        if function.builtin == "transfer"
        and function.transfer is not None
        and function.transfer.mode == "warm"
    ]


def _listed(config: TransferConfig, destination: str) -> bool:
    for entry in config.destinations or []:
        if isinstance(entry, str) and entry == destination:
            return True
        if isinstance(entry, dict) and destination in {str(v) for v in entry.values()}:
            return True
    return False


def install_warm(runner: WarmHost) -> WarmTransfer:
    setup = runner.setup

    def current_ai() -> AI | None:
        return runner.ai or setup.document.find_ai()

    def config_for(decision: Transfer) -> TransferConfig | None:
        """The `transfer` block of the function that asked: by name, else by destination, else the first."""
        name = decision.function
        if name and runner.functions is not None:
            function = runner.functions.get(name)
            if function is not None and function.transfer is not None:
                return function.transfer
        candidates = [f.transfer for f in _warm_functions(current_ai()) if f.transfer is not None]
        for config in candidates:
            if _listed(config, decision.destination):
                return config
        return candidates[0] if candidates else None

    async def summarize_call(config: TransferConfig) -> Summary:
        ai = current_ai() or AI()
        messages = list(runner.conversation.messages) if runner.conversation is not None else []
        return await summarize(
            setup.model_for("summary", ai),
            model_settings(ai.prompt, ai.params.ai_model, setup.env),
            messages,
            clock=runner.clock,
            prompt=config.summary_prompt,
            timeout=config.summary_timeout,
        )

    def consult(leg: Call, summary: Summary, config: TransferConfig) -> ConsultSession:
        ai = current_ai() or AI()
        agent = ConsultAgent(
            leg=leg,
            leg_name=str(getattr(leg, "leg", "") or leg.to_number),
            model=setup.model_for("consult", ai),
            settings=model_settings(ai.prompt, ai.params.ai_model, setup.env),
            instructions=consult_instructions(config.consult_prompt, summary.text),
            clock=runner.clock,
            outcome=runner.outcome,
            started_at=runner.started_at,
        )
        runner.consults.add(agent)
        return agent

    def check(destination: str) -> TransferResult | None:
        # The supervisor's redirect reaches us through the consult model: checked like a model's choice.
        return runner.controller.check_destination(destination, "model")

    warm = WarmTransfer(
        runner.controller,
        config_for=config_for,
        summarize=summarize_call,
        consult=consult,
        check_destination=check,
        on_hold=runner.caller_went_on_hold,
        media_guard=runner.guard(),
    )
    runner.controller._warm = warm  # the controller's seam for mode "warm"
    return warm
