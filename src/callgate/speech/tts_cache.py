"""A process-wide cache of synthesised phrases: greetings, fillers and goodbyes are said on every call.

Keyed by the synthesiser's identity (engine, voice, rate), the language, the output rate and the
exact text; least recently used entries go first once the cache holds `max_bytes` of audio. Only
short texts are kept — a long answer is rarely said twice.
"""

from __future__ import annotations

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
    (Sentences are made ahead of their turn by `speech.ahead`, per leg.)"""

    def __init__(self, inner: _Keyed, cache: PhraseCache, language: str) -> None:
        self.inner = inner
        self.cache = cache
        self.language = language

    def _key(self, text: str, sample_rate: int, language: str | None) -> tuple[str, str, int, str]:
        return (self.inner.cache_key, language or self.language, sample_rate, text)

    async def synthesize(self, text: str, *, sample_rate: int, language: str | None = None) -> bytes:
        key = self._key(text, sample_rate, language)
        short = len(text) <= MAX_CACHED_TEXT
        cached = self.cache.get(key) if short else None
        if cached is not None:
            return cached
        pcm = await self.inner.synthesize(text, sample_rate=sample_rate, language=language)
        if short:
            self.cache.put(key, pcm)
        return pcm
