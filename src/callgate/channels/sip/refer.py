"""Blind transfer by REFER (RFC 3515): the answers and NOTIFY progress mapped to DESIGN §3 outcomes.

The REFER's own final answer comes first: 202/200 means the peer will try; 403/603 is `rejected`;
anything else ≥ 300 is `unreachable` (the peer cannot transfer). Then each NOTIFY carries a
`message/sipfrag` status line of the peer's INVITE to the target: 1xx is progress; 2xx means the
transfer is complete (we then send BYE); 486/600 `busy`; 408/480/487 `no-answer`; 403/603
`rejected`; other failures `unreachable`. No final NOTIFY in time is `timeout`.
"""

from __future__ import annotations

from callgate.telephony.base import DialFailureCode


def sipfrag_status(body: bytes) -> int | None:
    """The status code of a `SIP/2.0 200 OK` sipfrag body (None if it is not one)."""
    first = body.decode("utf-8", "replace").strip().split("\n", 1)[0].strip()
    parts = first.split(" ", 2)
    if len(parts) >= 2 and parts[0].upper() == "SIP/2.0" and parts[1].isdigit():
        return int(parts[1])
    return None


def failure_for(status: int) -> DialFailureCode:
    """The DESIGN §3 failure code for a final SIP status that did not connect."""
    if status in (486, 600):
        return "busy"
    if status in (408, 480, 487):
        return "no-answer"
    if status in (403, 603):
        return "rejected"
    return "unreachable"
