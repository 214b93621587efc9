"""The store for async code (live calls, `serve`, `chat`, delivery): every store call runs on the
store's own thread, so a lock held by another process, a slow disk or a PostgreSQL row lock never
stalls the event loop (and with it every call of the process).

When the store is unusable (it could not be opened, or a write fails) a finished call's record
goes to the spool (`records.spool`) with a one-line warning, and is imported once the store works
again: `replay()` runs at start-up and periodically in serve's background worker.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from callgate.records.model import CallRecord
from callgate.records.spool import Spool, spool_dir
from callgate.records.store import NewReport, Store, StoreError, open_store
from callgate.redact import redact

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

Warn = Callable[[str], None]


class AsyncStore:
    """A `Store` (or none yet: opening it failed) with its own thread, and the spool beside it."""

    def __init__(
        self,
        store: Store | None,
        spool: Spool | None = None,
        *,
        url: str | None = None,
        warn: Warn | None = None,
    ) -> None:
        self.store = store
        self.spool = spool
        self.url = url if url is not None else (store.url if store is not None else None)
        self.warn: Warn = warn or log.warning
        self._told_unusable = False  # the open failure is said once, not at every retry
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    @classmethod
    async def open(cls, url: str | None, env: dict[str, str], *, warn: Warn | None = None) -> AsyncStore:
        """Open the store off the loop; an unusable one leaves records going to the spool."""
        spool = Spool(spool_dir(url, env))
        opened = cls(None, spool, url=url, warn=warn)
        await opened.reopen()
        await opened.replay()
        return opened

    @property
    def usable(self) -> bool:
        return self.store is not None

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` (a method of the store) on the store's thread."""
        if self.store is None:
            raise StoreError("no usable store")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def recall_conversation(self, conversation_id: str) -> str | None:
        """What the conversation remembers; nothing (with a warning) when the store is unusable."""
        if self.store is None:
            return None
        try:
            return await self.run(self.store.recall_conversation, conversation_id)
        except StoreError as exc:
            self.warn(f"conversation {conversation_id} not recalled: {exc}")
            return None

    async def reopen(self) -> bool:
        """Try to open the store (when it could not be opened before)."""
        if self.store is not None:
            return True
        loop = asyncio.get_running_loop()
        try:
            self.store = await loop.run_in_executor(self._executor, open_store, self.url)
        except StoreError as exc:
            if not self._told_unusable:
                self._told_unusable = True
                self.warn(
                    f"call records are off until the store is usable ({exc}): "
                    f"finished calls are spooled in {self._spool_text()}"
                )
            return False
        return True

    async def save_call(
        self,
        record: CallRecord,
        report: NewReport | None = None,
        *,
        now: float,
        job: dict[str, Any] | None = None,
    ) -> bool:
        """Write the record (and its job and report); True when the store has it, False when it
        went to the spool instead."""
        if self.store is not None:
            try:
                await self.run(self.store.save_call, record, report, now=now, job=job)
                return True
            except StoreError as exc:
                reason = str(exc)
        else:
            reason = "no usable store"
        if self.spool is None:
            raise StoreError(f"call {record.call_id} not recorded: {reason}")
        loop = asyncio.get_running_loop()
        # The spool writes a file and fsyncs it: off the loop too (not on the store's thread,
        # which may still be waiting for a lock).
        path: Path = await loop.run_in_executor(
            None, functools.partial(self.spool.write, record, now=now, job=job, report=report)
        )
        self.warn(f"call {record.call_id} spooled to {path} (the store is unusable: {redact(reason)})")
        return False

    async def replay(self) -> int:
        """Import what the spool holds, when there is a store to import it into."""
        if self.spool is None or not await self.reopen():
            return 0
        spool, store = self.spool, self.store
        assert store is not None
        if not spool.pending():
            return 0
        try:
            return await self.run(spool.replay, store)
        except StoreError as exc:
            log.warning("spooled records stay spooled: %s", exc)
            return 0

    def _spool_text(self) -> str:
        return str(self.spool.directory) if self.spool is not None else "(no spool)"

    async def aclose(self) -> None:
        store, self.store = self.store, None
        if store is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, store.close)
        self._executor.shutdown(wait=False)


def as_async(store: Store | AsyncStore) -> AsyncStore:
    """The async face of a store; a plain `Store` gets one (with its own thread), kept on it."""
    if isinstance(store, AsyncStore):
        return store
    if not isinstance(store.async_face, AsyncStore):
        store.async_face = AsyncStore(store)
    return store.async_face
