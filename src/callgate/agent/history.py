"""The conversation in OpenAI message format (SignalWire's call_log) plus a raw log with times."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from callgate.llm.types import ToolCall
from callgate.swml.limits import load_json

# An hour-long call must not grow every request without limit: without
# params.conversation_sliding_window, the model sees the newest 200 messages (and the system prompt).
DEFAULT_WINDOW = 200


@dataclass
class Conversation:
    system_prompt: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    raw_log: list[dict[str, Any]] = field(default_factory=list)
    # What the system prompt says about the current context and step (prompt.contexts), if any.
    step_prompt: str = ""
    # The most recent messages sent to the model (params.conversation_sliding_window); None: all.
    window: int | None = DEFAULT_WINDOW

    def _log(self, message: dict[str, Any], t: float) -> None:
        self.messages.append(message)
        self.raw_log.append({**message, "timestamp": t})

    def add_user(self, text: str, t: float) -> None:
        self._log({"role": "user", "content": text}, t)

    def add_system(self, text: str, t: float) -> None:
        """A mid-call instruction (attention / hard-stop prompts)."""
        self._log({"role": "system", "content": text}, t)

    def add_assistant(self, text: str, tool_calls: list[ToolCall], t: float) -> None:
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in tool_calls
            ]
        if text or tool_calls:
            self._log(message, t)

    def keep_heard(self, since: int, heard: str, t: float) -> None:
        """Barge-in cut the agent: its replies since message `since` keep only the words the caller
        heard (tool calls stay: they were made). The raw log keeps the model's text and notes the cut."""
        kept: list[dict[str, Any]] = []
        remaining: str | None = heard or None
        for message in self.messages[since:]:
            if message["role"] == "assistant" and message.get("content"):
                message = {**message, "content": remaining}
                remaining = None
                if not message["content"] and not message.get("tool_calls"):
                    continue
            kept.append(message)
        self.messages[since:] = kept
        self.raw_log.append({"role": "assistant", "content": heard or None, "timestamp": t, "barge_in": True})

    def add_tool_result(self, call_id: str, content: str, t: float) -> None:
        message = {"role": "tool", "tool_call_id": call_id, "content": content}
        if not self._has_tool_call(call_id):
            # The call that asked for it is gone (a context_switch replaced the history): an orphan
            # tool message would make the next request invalid, so it is kept in the raw log only.
            self.raw_log.append({**message, "timestamp": t, "dropped": "context switched"})
            return
        self._log(message, t)

    def forget_tool_call(self, call_id: str) -> None:
        """Take a tool call out of the history the model sees (SignalWire's gather_submit leaves no
        tool call or result there); an assistant message left with nothing is dropped. The raw log
        keeps it."""
        for index in range(len(self.messages) - 1, -1, -1):
            message = self.messages[index]
            calls = message.get("tool_calls") if message["role"] == "assistant" else None
            if not calls or not any(call.get("id") == call_id for call in calls):
                continue
            kept = [call for call in calls if call.get("id") != call_id]
            if kept:
                self.messages[index] = {**message, "tool_calls": kept}
            elif message.get("content"):
                self.messages[index] = {key: value for key, value in message.items() if key != "tool_calls"}
            else:
                del self.messages[index]
            return

    def close_tool_calls(self, content: str, t: float) -> None:
        """Give every tool call still waiting for its result `content` (its turn was stopped), so
        the next request is valid: the API refuses a tool call without a result."""
        for index in range(len(self.messages) - 1, -1, -1):
            message = self.messages[index]
            if message["role"] == "assistant" and message.get("tool_calls"):
                answered = {m.get("tool_call_id") for m in self.messages[index + 1 :] if m["role"] == "tool"}
                for call in message["tool_calls"]:
                    if call.get("id") not in answered:
                        self._log({"role": "tool", "tool_call_id": call.get("id"), "content": content}, t)
                return

    def _has_tool_call(self, call_id: str) -> bool:
        return any(
            call.get("id") == call_id
            for message in self.messages
            if message["role"] == "assistant"
            for call in message.get("tool_calls", [])
        )

    def context_switch(
        self, system_prompt: str | None, user_prompt: str | None, consolidate: bool, t: float
    ) -> None:
        """SignalWire context_switch: a new system prompt; history kept only when consolidating."""
        if system_prompt:
            if consolidate:
                summary = self.transcript_text()
                self.system_prompt = system_prompt + (
                    f"\n\nThe conversation so far:\n{summary}" if summary else ""
                )
            else:
                self.system_prompt = system_prompt
            self.messages = []
            self.raw_log.append({"role": "system", "content": self.system_prompt, "timestamp": t})
        if user_prompt:
            self.add_user(user_prompt, t)

    def enter_context(
        self,
        *,
        system_prompt: str | None,
        user_prompt: str | None,
        consolidate: bool,
        full_reset: bool,
        isolated: bool,
        t: float,
    ) -> None:
        """SignalWire's context entry: `full_reset` rewrites the system prompt (else a new one is
        injected as a system message); `isolated`, `full_reset` and `consolidate` start the history
        afresh, `consolidate` keeping a summary of it; `user_prompt` is put in the caller's mouth."""
        summary = self.transcript_text() if consolidate else ""
        if isolated or full_reset or consolidate:
            self.messages = []
        if system_prompt and full_reset:
            self.system_prompt = system_prompt
            self.raw_log.append({"role": "system", "content": system_prompt, "timestamp": t})
        elif system_prompt:
            self.add_system(system_prompt, t)
        if summary:
            self.add_system(f"The conversation so far:\n{summary}", t)
        if user_prompt:
            self.add_user(user_prompt, t)

    def system_text(self) -> str:
        return "\n\n".join(part for part in (self.system_prompt, self.step_prompt) if part)

    def request_messages(self) -> list[dict[str, Any]]:
        """What the model is sent: the system prompt, then the newest `window` messages."""
        text = self.system_text()
        system = [{"role": "system", "content": text}] if text else []
        return system + self.recent()

    def recent(self) -> list[dict[str, Any]]:
        """The newest `window` messages, never opening on a tool result whose call was cut off
        (an orphan tool message makes a request invalid): the window only starts at a user or
        assistant message, or at an instruction."""
        if self.window is None or len(self.messages) <= self.window:
            return self.messages
        start = len(self.messages) - max(self.window, 1)
        while start < len(self.messages) and self.messages[start]["role"] == "tool":
            start += 1
        return self.messages[start:]

    def call_log(self) -> list[dict[str, Any]]:
        """The whole conversation as SignalWire reports it (system prompt first, nothing cut)."""
        text = self.system_text()
        return ([{"role": "system", "content": text}] if text else []) + self.messages

    def transcript_text(self) -> str:
        lines = []
        for message in self.messages:
            content = message.get("content")
            if not content or message["role"] not in ("user", "assistant"):
                continue
            who = "Customer" if message["role"] == "user" else "Assistant"
            lines.append(f"{who}: {content}")
        return "\n".join(lines)

    def newest_input(self) -> str:
        for message in reversed(self.messages):
            if message["role"] in ("user", "tool"):
                return str(message.get("content") or "")
        return ""


def parse_arguments(raw: str) -> dict[str, Any]:
    """Tool-call arguments as a dict; anything unparsable — or nested deeper than the call can copy,
    render and record (`swml.limits`) — becomes an empty dict."""
    try:
        value = load_json(raw) if raw.strip() else {}
    except (ValueError, AttributeError):
        return {}
    return value if isinstance(value, dict) else {}
