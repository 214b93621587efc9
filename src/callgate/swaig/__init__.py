"""The SWAIG functions runtime: function set, natives, includes, webhooks, data_map, actions."""

from callgate.swaig.actions import Action, parse_actions
from callgate.swaig.clock import Clock, FixedClock, SystemClock
from callgate.swaig.context import CallContext
from callgate.swaig.runtime import FunctionResult, FunctionRuntime
from callgate.swaig.swaig_log import SwaigLogEntry

__all__ = [
    "Action",
    "CallContext",
    "Clock",
    "FixedClock",
    "FunctionResult",
    "FunctionRuntime",
    "SwaigLogEntry",
    "SystemClock",
    "parse_actions",
]
