"""play() sources by URL — hold music, `playback_bg`, `background_file`, the `play` verb — fetched
like every other request an agent document controls: through the private-address guard (DESIGN §4,
issue 10), on the process's shared HTTP client. The channel gets the fetcher as a plain callable
(`use_source_fetcher`), so it never imports agent or runtime code."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urljoin

import httpx

from callgate.speech.audio import AudioSourceError, SourceFetcher
from callgate.swaig.fetch import fetch, safe_url
from callgate.swaig.urlguard import Guard
from callgate.telephony.base import Call

FETCH_SECONDS = 10.0
MAX_AUDIO_BYTES = 32 * 1024 * 1024  # three minutes of 44.1 kHz stereo WAV
MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}


FailureNote = Callable[[str, str], None]
"""(the URL without credentials, why) of a source that could not be fetched: the call's timeline."""


def guarded_fetcher(
    http: httpx.AsyncClient, guard: Callable[[], Guard], on_failure: FailureNote | None = None
) -> SourceFetcher:
    """A fetcher that applies `guard()` (read at each fetch: a hand-off may change the document) to
    the URL and to every redirect hop; a refusal is an AudioSourceError carrying the guard's reason,
    also told to `on_failure` so the call's record keeps it."""

    async def fetch_source(url: str) -> bytes:
        try:
            return await _fetch(url)
        except AudioSourceError as error:
            if on_failure is not None:
                on_failure(safe_url(url), str(error))
            raise

    async def _fetch(url: str) -> bytes:
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            got = await fetch(
                http, "GET", current, timeout=FETCH_SECONDS, max_bytes=MAX_AUDIO_BYTES, guard=guard()
            )
            if not got.ok:
                raise AudioSourceError(f"cannot fetch {safe_url(current)}: {got.error}")
            status = got.status or 0
            location = got.headers.get("location") or got.headers.get("Location")
            if status in _REDIRECTS and location:
                current = urljoin(current, location)
                continue
            if status >= 400:
                raise AudioSourceError(f"cannot fetch {safe_url(current)}: HTTP {status}")
            return got.body
        raise AudioSourceError(f"cannot fetch {safe_url(url)}: more than {MAX_REDIRECTS} redirects")

    return fetch_source


def attach_source_fetcher(call: Call, fetcher: SourceFetcher) -> None:
    """Give a leg that fetches play() URLs (SIP) the guarded fetcher; other legs need none."""
    use = getattr(call, "use_source_fetcher", None)
    if use is not None:
        use(fetcher)
