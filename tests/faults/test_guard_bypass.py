"""Ways around the private-address guard found by attacking it (docs/security.md), each fixed:

- the SIP channel fetched `play` / `background_file` / `playback_bg` / hold-music URLs with its
  own unguarded client (following redirects): now the document's guard goes with the request and
  every redirect hop;
- `callgate dashboard` delivered reports (the document's `post_prompt_url`) through a plain client:
  the URL was checked, the name it resolved to was not;
- IPv4-translated IPv6 addresses (`::ffff:0:a.b.c.d`, SIIT) were taken for public ones.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callgate.channels.sim import SimCall
from callgate.channels.sip.audio import AudioSourceError, load_source
from callgate.records.model import CallRecord
from callgate.records.store import NewReport, open_store
from callgate.scenario.runner import run_scenario_file
from callgate.swaig.guarded_transport import AddressRefused, guarded_client, with_guard
from callgate.swaig.urlguard import Guard, address_refusal
from callgate.swml.errors import DocumentError
from callgate.swml.loader import fetch_document
from server.serving import Served  # tests/ is on sys.path (rootdir packages)

from .security_support import CALLGATE, ROOT, Receiver, closed_port, fixed_resolver


@contextmanager
def redirector(paths: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """A loopback server answering each path in `paths` with a 302 to its URL (`{base}` is the
    server's own base URL); every request path is recorded."""
    seen: list[str] = []

    class _Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            seen.append(self.path)
            target = paths.get(self.path)
            if target is None:
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            self.send_response(302)
            self.send_header("location", target.format(base=base))
            self.send_header("content-length", "0")
            self.end_headers()

        do_POST = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base, seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# ---------------------------------------------------------------- SIP playback by URL


async def test_sip_play_of_a_document_url_is_guarded() -> None:
    with Receiver() as receiver:
        for url in (f"{receiver.url}/music.wav", f"http://127\u30020\u30020\u30021:{receiver.port}/m.wav"):
            with pytest.raises(AudioSourceError, match="refused"):
                await load_source(url, guard=Guard())
        assert receiver.requests == []


async def test_sip_play_redirect_from_an_exempt_hop_to_an_internal_one_is_refused() -> None:
    with redirector({"/start.wav": "{base}/inside.wav"}) as (base, seen):
        # The first hop is let through (a scenario passthrough); the hop it redirects to is not.
        guard = Guard(exempt=lambda url: url.endswith("/start.wav"))
        with pytest.raises(AudioSourceError, match="refused"):
            await load_source(f"{base}/start.wav", guard=guard)
        assert seen == ["/start.wav"]


async def test_sip_play_with_the_document_exempt_still_follows_its_redirects() -> None:
    with redirector({"/start.wav": "{base}/gone.wav"}) as (base, seen):
        with pytest.raises(AudioSourceError, match="HTTP 404"):
            await load_source(f"{base}/start.wav", guard=Guard(allow_private=True))
        assert seen == ["/start.wav", "/gone.wav"]


_PLAYING_AGENT = """\
name: every URL the document plays carries the document's guard to the channel
agent:
  sections:
    main:
      - answer
      - play: {url: "http://127.0.0.1:9/intro.wav"}
      - ai:
          prompt: {text: You are Frank.}
          params: {background_file: "http://127.0.0.1:9/background.wav"}
          SWAIG:
            functions:
              - function: music
                description: Play music.
                web_hook_url: https://api.example.com/music
llm:
  - text: Hi.
  - match: music
    tool_calls: [{name: music, arguments: {}}]
  - text: Enjoy.
http:
  - method: POST
    url: https://api.example.com/music
    json: {response: ok, action: [{playback_bg: {file: "http://169.254.169.254/music.wav"}}]}
turns:
  - user: play some music
  - hangup
"""


def _record_plays(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Guard | None]]:
    """What the agent asks the (simulated) channel to play, with the guard it hands over."""
    played: list[tuple[str, Guard | None]] = []
    original = SimCall.play

    async def recording(self: SimCall, source: str, loop: bool = False, *, guard: Guard | None = None) -> Any:
        played.append((source, guard))
        return await original(self, source, loop, guard=guard)

    monkeypatch.setattr(SimCall, "play", recording)
    return played


def test_warm_transfer_hold_music_reaches_the_channel_with_the_documents_guard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    played = _record_plays(monkeypatch)
    result = run_scenario_file(ROOT / "examples" / "scenarios" / "warm_no_answer.yaml")
    assert result.passed, result.all_failures
    assert [source for source, _ in played] == ["https://example.com/hold-music.mp3"]
    assert all(isinstance(guard, Guard) for _, guard in played)


def test_every_played_url_reaches_the_channel_with_the_documents_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SIP channel fetches what it plays: the agent must hand it the guard (`play`, the
    `background_file` param, a webhook's `playback_bg` action)."""
    played = _record_plays(monkeypatch)
    scenario = tmp_path / "play.yaml"
    scenario.write_text(_PLAYING_AGENT, encoding="utf-8")
    run_scenario_file(scenario)
    assert [source for source, _ in played] == [
        "http://127.0.0.1:9/intro.wav",
        "http://127.0.0.1:9/background.wav",
        "http://169.254.169.254/music.wav",
    ]
    for source, guard in played:
        assert guard is not None and guard.url_refusal(source) is not None, source


# ---------------------------------------------------------------- documents by URL, proxies


async def test_an_assistant_document_redirected_inside_is_refused_at_the_hop() -> None:
    with redirector({"/agent.json": "{base}/inside.json"}) as (base, seen):
        guard = Guard(exempt=lambda url: url.endswith("/agent.json"))
        async with guarded_client() as client:
            with pytest.raises(DocumentError, match="refused"):
                await fetch_document(f"{base}/agent.json", client=client, extensions=with_guard(guard))
        assert seen == ["/agent.json"]


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"])
async def test_proxy_variables_never_carry_a_guarded_request(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy would connect wherever it is told (and the pinning transport would check only the
    proxy's address): the guarded client ignores proxy variables for document requests."""
    with Receiver() as proxy:
        monkeypatch.setenv(variable, proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        resolver = fixed_resolver({"hooks.example.com": ["127.0.0.1"]})
        async with guarded_client(resolver=resolver) as client:
            for url in ("http://hooks.example.com/x", "https://hooks.example.com/x"):
                with pytest.raises(AddressRefused):
                    await client.get(url, extensions=with_guard(Guard()))
        assert proxy.requests == []


# ---------------------------------------------------------------- URL spellings around the check

_FULLWIDTH = str.maketrans("0123456789.", "０１２３４５６７８９．")
_INSIDE = ["127.0.0.1", "169.254.169.254", "10.0.0.1", "192.168.0.10", "100.64.0.1", "0.0.0.0"]


def _spell(address: str, how: str) -> str:
    value = int(ipaddress.IPv4Address(address))
    parts = address.split(".")
    return {
        "dotted": address,
        "ideographic-dots": "\u3002".join(parts),
        "halfwidth-dots": "\uff61".join(parts),
        "fullwidth": address.translate(_FULLWIDTH),
        "integer": str(value),
        "hex": hex(value),
        "octal-parts": ".".join(f"0{int(p):o}" for p in parts),
        "short": f"{parts[0]}.{value & 0xFFFFFF}",
        "zero-padded": ".".join(p.zfill(3) for p in parts),  # a leading 0 is octal: only for 127…
    }[how]


@settings(max_examples=400, deadline=None)
@given(
    address=st.sampled_from(_INSIDE),
    how=st.sampled_from(["dotted", "ideographic-dots", "halfwidth-dots", "fullwidth", "integer", "hex"]),
    userinfo=st.sampled_from(["", "evil.com@", "user:pass@", "a%40b@"]),
    trailer=st.sampled_from(["", ".", ".."]),
    port=st.sampled_from(["", ":80", ":8080"]),
    tail=st.sampled_from(["/", "/x", "/x#@evil.com", "?@evil.com", "#@evil.com"]),
    upper=st.booleans(),
)
def test_property_no_spelling_of_an_internal_address_gets_past_the_url_check(
    address: str, how: str, userinfo: str, trailer: str, port: str, tail: str, upper: bool
) -> None:
    """Userinfo, fragments and queries that name another host, trailing dots, Unicode dots and
    digits, legacy numeric forms: the host httpx would connect to is what is judged."""
    url = f"{'HTTP' if upper else 'http'}://{userinfo}{_spell(address, how)}{trailer}{port}{tail}"
    assert Guard().url_refusal(url) is not None, url
    for other in ("octal-parts", "short") + (("zero-padded",) if address.startswith("127.") else ()):
        assert Guard().url_refusal(f"http://{userinfo}{_spell(address, other)}{trailer}{port}{tail}"), other


def test_a_zero_padded_part_is_octal_as_for_the_resolver() -> None:
    # 010 is 8 for inet_aton, and so for getaddrinfo: 010.0.0.1 is 8.0.0.1, where the client goes.
    assert Guard().url_refusal("http://010.000.000.001./") is None
    assert Guard().url_refusal("http://127.000.000.001./") is not None


# ---------------------------------------------------------------- IPv4-translated addresses

_INTERNAL_V4 = st.sampled_from(["127.0.0.1", "10.0.0.1", "169.254.169.254", "192.168.1.1", "100.64.0.1"])


@settings(max_examples=200, deadline=None)
@given(st.one_of(_INTERNAL_V4, st.integers(0, 2**32 - 1).map(lambda v: str(ipaddress.IPv4Address(v)))))
def test_property_an_ipv4_translated_address_is_judged_by_the_ipv4_it_carries(v4: str) -> None:
    inner = ipaddress.IPv4Address(v4)
    translated = ipaddress.IPv6Address(f"::ffff:0:{int(inner) >> 16:x}:{int(inner) & 0xFFFF:x}")
    assert (address_refusal(translated) is None) is (address_refusal(inner) is None), translated
    assert Guard().url_refusal(f"http://[{translated}]/") is None or address_refusal(inner) is not None


# ---------------------------------------------------------------- the dashboard's report worker


def test_dashboard_delivers_reports_through_the_pinning_transport(tmp_path: Path) -> None:
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        pytest.skip("this machine's host name does not resolve")
    if address != "127.0.0.1":
        pytest.skip("this machine's host name does not resolve to 127.0.0.1 (where the receiver listens)")
    store_path = tmp_path / "calls.db"
    with Receiver() as receiver:
        url = f"http://{name}:{receiver.port}/report"
        assert Guard().url_refusal(url) is None  # the name alone passes: only resolution catches it
        with open_store(str(store_path)) as store:
            store.save_call(
                CallRecord(call_id="c1"), NewReport("key-c1", url, {"call_id": "c1"}, guard="strict"), now=0.0
            )
        served = Served(
            subprocess.Popen(
                [str(CALLGATE), "dashboard", "--http", f"127.0.0.1:{closed_port()}", "--db", str(store_path)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
                env={**os.environ, "CALLGATE_ADMIN_TOKEN": "t" * 32},
            ),
            http_port=None,
            sip_port=None,
        )
        try:
            error = ""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not error and not receiver.requests:
                time.sleep(0.5)
                with open_store(str(store_path)) as store:
                    error = next((r.last_error or "" for r in store.reports()), "")
        finally:
            served.stop()
        assert receiver.requests == []
        assert "resolves to a refused address" in error
