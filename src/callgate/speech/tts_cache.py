"""A process-wide cache of synthesised phrases: greetings, fillers and goodbyes are said on every call.

Keyed by the synthesiser's identity (engine, voice, rate), the language, the output rate and the
exact text; least recently used entries go first once the cache holds `max_bytes` of audio. Only
short texts are kept — a long answer is rarely said twice.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Protocol

from callgate.speech.base import Synthesizer

MAX_CACHED_TEXT = 200  # characters


class _Keyed(Synthesizer, Protocol):
    @property
    def cache_key(self) -> str: ...


class PhraseCache:
    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str, int, str], bytes] = OrderedDict()
        self._size = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str, int, str]) -> bytes | None:
        pcm = self._entries.get(key)
        if pcm is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return pcm

    def put(self, key: tuple[str, str, int, str], pcm: bytes) -> None:
        if len(pcm) > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._size -= len(old)
        self._entries[key] = pcm
        self._size += len(pcm)
        while self._size > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._size -= len(dropped)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)


class CachedSynthesizer:
    """A synthesiser whose short phrases come from a shared `PhraseCache` after the first time.

    `prefetch()` starts synthesising a sentence that will be said next, so it is ready when the one
    playing now ends (the speaker queues sentences as the model streams them); the `synthesize()`
    that follows for the same text takes the result, or its error.
    """

    def __init__(self, inner: _Keyed, cache: PhraseCache, language: str) -> None:
        self.inner = inner
        self.cache = cache
        self.language = language
        self._pending: dict[tuple[str, str, int, str], asyncio.Task[bytes]] = {}

    def _key(self, text: str, sample_rate: int, language: str | None) -> tuple[str, str, int, str]:
        return (self.inner.cache_key, language or self.language, sample_rate, text)

    def prefetch(self, text: str, *, sample_rate: int, language: str | None = None) -> None:
        key = self._key(text, sample_rate, language)
        if key in self._pending or (len(text) <= MAX_CACHED_TEXT and key in self.cache):
            return
        task = asyncio.get_running_loop().create_task(
            self.inner.synthesize(text, sample_rate=sample_rate, language=language)
        )
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved; never "never retrieved"
        self._pending[key] = task

    async def synthesize(self, text: str, *, sample_rate: int, language: str | None = None) -> bytes:
        key = self._key(text, sample_rate, language)
        short = len(text) <= MAX_CACHED_TEXT
        cached = self.cache.get(key) if short else None
        if cached is not None:
            return cached
        pending = self._pending.pop(key, None)
        if pending is not None:
            pcm = await pending
        else:
            pcm = await self.inner.synthesize(text, sample_rate=sample_rate, language=language)
        if short:
            self.cache.put(key, pcm)
        return pcm

    def discard(self) -> None:
        """Drop prefetched sentences that will not be said (barge-in, hang-up)."""
        for task in self._pending.values():
            task.cancel()
        self._pending.clear()
