"""Wires warm transfer into one call: summary and consult models, config look-up, the consult agents.

`install_warm(runner)` builds the call's `WarmTransfer` and hands it to the controller (its `_warm`
seam), so control never imports the runtime (DESIGN §2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from callgate.agent.decisions import Transfer, TransferResult
from callgate.control.warm.consult import ConsultSession
from callgate.control.warm.summary import Summary, summarize
from callgate.control.warm.transfer import WarmTransfer
from callgate.llm.factory import model_settings
from callgate.runtime.consult import ConsultAgent, consult_instructions
from callgate.swml.models import AI, Function, TransferConfig
from callgate.telephony.base import Call

if TYPE_CHECKING:
    from callgate.runtime.call_runner import CallRunner


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


def install_warm(runner: CallRunner) -> WarmTransfer:
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
    )
    runner.controller._warm = warm  # the controller's seam for mode "warm"
    return warm
