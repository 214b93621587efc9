"""A SIP dialog (RFC 3261 §12): the identifiers, CSeq counters and route every in-dialog request
needs, with its state as an explicit machine (EARLY → CONFIRMED → TERMINATED)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from callgate.channels.sip.message import NameAddr, SipMessage, SipUri, new_branch
from callgate.channels.sip.transaction import Address


class DialogState(StrEnum):
    EARLY = "early"  # INVITE answered provisionally (or not yet answered, for our own INVITE)
    CONFIRMED = "confirmed"  # 2xx sent or received
    TERMINATED = "terminated"  # BYE sent or received, or the INVITE failed


DIALOG_TRANSITIONS: Final[dict[DialogState, frozenset[DialogState]]] = {
    DialogState.EARLY: frozenset({DialogState.CONFIRMED, DialogState.TERMINATED}),
    DialogState.CONFIRMED: frozenset({DialogState.TERMINATED}),
    DialogState.TERMINATED: frozenset(),
}


class IllegalDialogTransition(RuntimeError):
    """A dialog was moved where it cannot go (a bug in the channel)."""


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # our From (as UAC) / To (as UAS) value without the tag
    remote_uri: str
    remote_target: str  # the peer's Contact URI
    local_contact: str
    via_host: str  # host:port for our Via headers
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = 1
    remote_cseq: int = 0
    state: DialogState = DialogState.EARLY

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    def move(self, target: DialogState) -> None:
        if target is self.state:
            return
        if target not in DIALOG_TRANSITIONS[self.state]:
            raise IllegalDialogTransition(f"a {self.state} dialog cannot become {target}")
        self.state = target

    @classmethod
    def as_uas(cls, invite: SipMessage, local_tag: str, local_contact: str, via_host: str) -> Dialog:
        contacts = invite.get_all("Contact")
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=invite.from_tag,
            local_uri=_without_tag(invite.get("To")),
            remote_uri=_without_tag(invite.get("From")),
            remote_target=NameAddr.parse(contacts[0]).uri
            if contacts
            else NameAddr.parse(invite.get("From")).uri,
            local_contact=local_contact,
            via_host=via_host,
            route_set=invite.get_all("Record-Route"),
            remote_cseq=invite.cseq[0],
        )

    @classmethod
    def as_uac(cls, invite: SipMessage, response: SipMessage, local_contact: str, via_host: str) -> Dialog:
        contacts = response.get_all("Contact")
        return cls(
            call_id=invite.call_id,
            local_tag=invite.from_tag,
            remote_tag=response.to_tag,
            local_uri=_without_tag(invite.get("From")),
            remote_uri=_without_tag(invite.get("To")),
            remote_target=NameAddr.parse(contacts[0]).uri if contacts else invite.uri,
            local_contact=local_contact,
            via_host=via_host,
            route_set=list(reversed(response.get_all("Record-Route"))),
            local_cseq=invite.cseq[0],
        )

    def request(self, method: str, body: bytes = b"", content_type: str = "") -> SipMessage:
        """A new in-dialog request (fresh branch; CSeq advanced, except for ACK)."""
        if method != "ACK":
            self.local_cseq += 1
        message = SipMessage(method=method, uri=self.remote_target)
        message.headers.append(("Via", f"SIP/2.0/UDP {self.via_host};branch={new_branch()};rport"))
        message.headers.append(("Max-Forwards", "70"))
        for route in self.route_set:
            message.headers.append(("Route", route))
        message.headers.append(("From", f"{self.local_uri};tag={self.local_tag}"))
        message.headers.append(("To", f"{self.remote_uri};tag={self.remote_tag}"))
        message.headers.append(("Call-ID", self.call_id))
        message.headers.append(("CSeq", f"{self.local_cseq} {method}"))
        message.headers.append(("Contact", self.local_contact))
        if body:
            message.headers.append(("Content-Type", content_type or "application/sdp"))
        message.body = body
        return message

    def ack(self, invite_cseq: int, body: bytes = b"") -> SipMessage:
        """The ACK for a 2xx to our INVITE or re-INVITE (§13.2.2.4): its own branch, INVITE's CSeq."""
        ack = self.request("ACK", body)
        ack.set("CSeq", f"{invite_cseq} ACK")
        return ack

    def destination(self) -> Address:
        """Where in-dialog requests go: the first route if any (loose routing), else the target."""
        uri = NameAddr.parse(self.route_set[0]).uri if self.route_set else self.remote_target
        parsed = SipUri.parse(uri)
        return (parsed.host, parsed.port or 5060)

    def accepts(self, request: SipMessage) -> bool:
        """Whether an in-dialog request is new (CSeq above the last); out-of-order ones get 500."""
        number = request.cseq[0]
        if request.method in ("ACK", "CANCEL"):
            return True
        if number <= self.remote_cseq:
            return False
        self.remote_cseq = number
        return True


def _without_tag(value: str) -> str:
    parsed = NameAddr.parse(value)
    parsed.params.pop("tag", None)
    return str(parsed)
