"""Prometheus figures are counted from the live events calls publish."""

from __future__ import annotations

from callgate.cli.dashboard import NoLiveCalls
from callgate.runtime.live import LiveEvent
from callgate.server import ServerContext
from callgate.server.metrics import CallMetrics


def _event(
    kind: str, t: float | None = None, leg: str = "caller", call_id: str = "c1", **data: object
) -> LiveEvent:
    return LiveEvent(kind=kind, call_id=call_id, at=0.0, t=t, leg=leg, data=dict(data))


def _value(metrics: CallMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels or None)


async def test_calls_transfers_errors_and_latencies_are_counted() -> None:
    metrics = CallMetrics(ServerContext(live=NoLiveCalls()))
    for event in [
        _event("model-request", 0.1),
        _event("model-error", 0.5, error_kind="timeout"),
        _event("caller-said", 2.0, text="hi"),
        _event("say", 2.6, text="hello"),
        _event("say", 4.0, text="no caller words before this one"),
        _event("function-call", 5.0, name="lookup"),
        _event("function-result", 5.25, name="lookup", error="timeout"),
        _event("transfer-outcome", 6.0, to="+1555", mode="blind", result="failed", reason="busy"),
        _event("transfer-outcome", 7.0, to="+1555", mode="blind", result="completed"),
        _event("call-ended", ended_reason="assistant-forwarded-call"),
        _event("call-ended", call_id="c2", ended_reason="customer-ended-call"),
    ]:
        await metrics.observe(event)
    assert _value(metrics, "callgate_model_requests_total") == 1
    assert _value(metrics, "callgate_model_errors_total", kind="timeout") == 1
    assert _value(metrics, "callgate_turn_seconds_count") == 1
    assert abs((_value(metrics, "callgate_turn_seconds_sum") or 0) - 0.6) < 1e-9
    assert _value(metrics, "callgate_function_calls_total") == 1
    assert _value(metrics, "callgate_function_errors_total") == 1
    assert _value(metrics, "callgate_function_seconds_sum") == 0.25
    assert _value(metrics, "callgate_transfers_total", outcome="failed") == 1
    assert _value(metrics, "callgate_transfers_total", outcome="completed") == 1
    assert _value(metrics, "callgate_calls_total", ended_reason="assistant-forwarded-call") == 1
    assert _value(metrics, "callgate_calls_total", ended_reason="customer-ended-call") == 1
    assert _value(metrics, "callgate_active_calls") == 0
    assert b"callgate_reports" in metrics.render()
