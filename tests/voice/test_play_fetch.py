"""play() URLs fetched for a call (runtime.audio_fetch): the document's private-address guard applies
to the URL and to every redirect hop, and a refusal says why (issue 10 item 1)."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest

from callgate.runtime.audio_fetch import guarded_fetcher
from callgate.speech.audio import AudioSourceError
from callgate.swaig.guarded_transport import guarded_client
from callgate.swaig.urlguard import Guard
from server.peers import http_thread

MUSIC = b"RIFF-not-really-a-wav"


class Handler(BaseHTTPRequestHandler):
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Handler.paths.append(self.path)
        if self.path.startswith("/moved"):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/moved?to="))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status, body = (200, MUSIC) if self.path == "/music.wav" else (404, b"")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def base() -> Any:
    Handler.paths = []
    with http_thread(Handler) as url:
        yield url


async def test_a_loopback_url_is_refused_with_the_guards_reason(base: str) -> None:
    noted: list[tuple[str, str]] = []
    async with guarded_client() as http:
        fetch = guarded_fetcher(http, Guard, lambda url, why: noted.append((url, why)))
        with pytest.raises(AudioSourceError, match=r"private or loopback.*swaig_allow_private_urls"):
            await fetch(f"{base.replace('http://', 'http://user:pw@')}/music.wav")
    assert Handler.paths == []  # refused before any connection
    assert [url for url, _ in noted] == [f"{base}/music.wav"]  # for the call's record, without credentials
    assert "refused: 127.0.0.1 is a private or loopback address" in noted[0][1]


async def test_the_documents_allow_setting_lets_it_through(base: str) -> None:
    async with guarded_client() as http:
        fetch = guarded_fetcher(http, lambda: Guard(allow_private=True))
        assert await fetch(f"{base}/music.wav") == MUSIC
        with pytest.raises(AudioSourceError, match="HTTP 404"):
            await fetch(f"{base}/missing.wav")


async def test_every_redirect_hop_is_judged_on_its_own(base: str) -> None:
    port = base.rsplit(":", 1)[1]
    async with guarded_client() as http:
        # The document's own host (127.0.0.1) is exempt; a redirect to `localhost` is not.
        fetch = guarded_fetcher(http, lambda: Guard(document_host="127.0.0.1"))
        assert await fetch(f"{base}/moved?to=/music.wav") == MUSIC
        with pytest.raises(AudioSourceError, match="localhost is a loopback name"):
            await fetch(f"{base}/moved?to=http://localhost:{port}/music.wav")
    assert Handler.paths == [
        "/moved?to=/music.wav",
        "/music.wav",
        f"/moved?to=http://localhost:{port}/music.wav",
    ]
