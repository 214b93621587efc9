"""Who and where the call is: the values SignalWire puts in every SWAIG request and template."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any


def _new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class CallContext:
    """Per-call identity. `document_host` is the host that served the agent document (if it was
    fetched by URL): webhooks to it are allowed even when it is a private address."""

    call_id: str = field(default_factory=_new_id)
    ai_session_id: str = field(default_factory=_new_id)
    caller_id_num: str = ""
    caller_id_name: str = ""
    to_number: str = ""
    app_name: str = "swml app"
    project_id: str = ""
    space_id: str = ""
    swml_vars: dict[str, Any] = field(default_factory=dict)
    document_host: str | None = None
    conversation_id: str | None = None
    # Whether the caller's leg is still up; SignalWire reports it to webhooks as `channel_active`.
    channel_active: bool = True

    def call_scope(self) -> dict[str, Any]:
        """SignalWire's `call` variable scope (`${call.from}`, `${call.call_id}`), as its template
        examples use it in data_map webhooks and prompts."""
        scope: dict[str, Any] = {"call_id": self.call_id, "from": self.caller_id_num, "to": self.to_number}
        if self.caller_id_name:
            scope["caller_id_name"] = self.caller_id_name
        return scope
