"""Who holds a lease on a row of the store (an outbox report, a post-call job), and whether that
holder is gone.

A worker id is `host:pid:random`. A lease is taken over when it has run out, or at once when its
holder ran on this host and that process is dead (DESIGN §7): after a `kill -9`, the next
`callgate calls deliver` or restart need not wait the lease out.
"""

from __future__ import annotations

import os
import socket
import uuid

HOST = socket.gethostname()


def new_worker_id() -> str:
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_gone(owner: str | None) -> bool:
    """True when `owner` is a worker of this host whose process no longer exists."""
    if not owner:
        return False
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != HOST or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's live process
        return False
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    """A killed child not yet reaped still answers kill(0): its state says it is dead."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False
