"""The demo agent `make demo` talks to: embedded in the package, so it runs from any directory."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# What the demo's caller says when nobody is at a terminal (CI, `make demo < /dev/null`).
SCRIPTED_CALLER = [
    "Hi! What are your opening hours?",
    "Great, thanks. That's all, bye!",
    # A caller whose goodbye was not taken up says it again, as people do.
    "Bye!",
    "Goodbye!",
]


def agent_path() -> Path:
    return Path(str(resources.files(__package__).joinpath("agent.yaml")))
