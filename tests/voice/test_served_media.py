"""What callgate already did on the sim channel, on a served call over real RTP (issue 9 item 5):
a function's filler while a slow webhook runs, `playback_bg` from a WAV file, hold music from an
http URL (through the private-address guard, issue 10), the document's `hangup_delay_ms` before the
BYE (issue 8 item 2), and a warm transfer whose consult agent briefs a supervisor on their own leg
before the caller and the supervisor are bridged.

The caller (and the supervisor) are callgate's own SIP user agents in the test process; every frame
they receive is kept with its arrival time (`Recorder`). Where the words do not matter, a tone
check (its frequency's share of the energy) stands in for transcription: Whisper is slow here."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from callgate.channels.sip import SipCall, SipConfig, SipEndpoint
from callgate.scenario.model_server import SHARED
from callgate.speech.audio import to_wav
from callgate.speech.backends import SpeechBackends
from callgate.speech.settings import SpeechSettings
from server.peers import ModelThread, http_thread
from server.serving import Served, serving
from sip_channel.peers import ToneSynthesizer, tone_share

from .test_voice_calls import Ear, caller, heard, until_ended

pytestmark = pytest.mark.timeout(240)

MUSIC_HZ = 440.0
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass
class Recorder:
    """Every frame a leg received, with its arrival time on this process's monotonic clock."""

    frames: list[tuple[float, bytes]] = field(default_factory=list)

    def attach(self, leg: SipCall) -> None:
        leg.on_frame_received = lambda frame: self.frames.append((time.monotonic(), frame))

    def pcm(self, since: float = 0.0, until: float = float("inf")) -> bytes:
        return b"".join(frame for at, frame in list(self.frames) if since <= at < until)

    def voiced_times(self) -> list[float]:
        return [at for at, frame in list(self.frames) if _rms(frame) > 300.0]

    def first_tone(self, frequency: float, since: float = 0.0) -> float | None:
        """When `frequency` was first the main sound (a 200 ms stretch) after `since`."""
        frames = [(at, frame) for at, frame in list(self.frames) if at >= since]
        for i in range(0, len(frames) - 10, 5):
            if tone_share(b"".join(frame for _, frame in frames[i : i + 10]), frequency) > 0.7:
                return frames[i][0]
        return None

    def best_tone(
        self, frequency: float, since: float = 0.0, until: float = float("inf"), seconds: float = 1.0
    ) -> float:
        """The largest share of `frequency` in any `seconds`-long stretch received in [since, until)."""
        frames = [frame for at, frame in list(self.frames) if since <= at < until]
        size = int(seconds / 0.02)
        return max(
            (tone_share(b"".join(frames[i : i + size]), frequency) for i in range(0, len(frames), size // 2)),
            default=0.0,
        )


def _rms(frame: bytes) -> float:
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


async def _until(check: Any, limit: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class WebServer:
    """A loopback HTTP server in a thread: music files and SWAIG webhooks, every request noted."""

    url: str = ""
    requests: list[tuple[str, float]] = field(default_factory=list)  # (path, arrival)
    answered: dict[str, float] = field(default_factory=dict)  # path → when its answer was sent


@contextmanager
def web_server(
    music: bytes, hook_delay: float = 0.0, hook_answer: dict[str, Any] | None = None
) -> Iterator[WebServer]:
    state = WebServer()

    class Handler(BaseHTTPRequestHandler):
        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            state.answered[self.path] = time.monotonic()

        def do_GET(self) -> None:
            state.requests.append((self.path, time.monotonic()))
            self._send(music, "audio/wav")

        def do_POST(self) -> None:
            state.requests.append((self.path, time.monotonic()))
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(hook_delay)  # a slow function: the agent fills the wait
            self._send(json.dumps(hook_answer or {}).encode(), "application/json")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http_thread(Handler) as state.url:
        yield state


def _music() -> bytes:
    """One second of the hold-music tone as a 16 kHz WAV (the channel resamples it to 8 kHz)."""
    n = np.arange(16000)
    return to_wav((8000 * np.sin(2 * np.pi * MUSIC_HZ * n / 16000)).astype("<i2").tobytes(), 16000)


def _document(path: Path, ai: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"version": "1.0.0", "sections": {"main": [{"ai": ai}]}}))
    return path


def _serve(agent: Path, tmp_path: Path, extra: list[str] | None = None) -> Any:
    return serving(agent, http=False, sip=True, env={"CALLGATE_DB": str(tmp_path / "calls.db")}, extra=extra)


# ---------------------------------------------------------------- fillers and playback_bg


async def test_a_slow_functions_filler_is_heard_then_its_playback_bg_plays(
    tmp_path: Path, backends: SpeechBackends
) -> None:
    music = tmp_path / "music.wav"
    music.write_bytes(_music())
    answer = {
        "response": "Order 42 ships tomorrow.",
        "action": [{"playback_bg": {"file": str(music), "wait": False}}],
    }
    script = [
        {"text": "Hello, this is Frank."},
        {"tool_calls": [{"name": "find_order", "arguments": {"order": "42"}}]},
        {"text": "Your order ships tomorrow."},
    ]
    with ModelThread({"agent": script}) as model, web_server(b"", hook_delay=4.0, hook_answer=answer) as web:
        ai = {
            "prompt": {"text": "You are Frank from Acme."},
            "params": {"llm_base_url": model.base_url("agent"), "swaig_allow_private_urls": True},
            "SWAIG": {
                "functions": [
                    {
                        "function": "find_order",
                        "description": "Find an order.",
                        "parameters": {"type": "object", "properties": {"order": {"type": "string"}}},
                        "web_hook_url": f"{web.url}/hook",
                        "fillers": {"en-US": ["One moment while I look that up."]},
                    }
                ]
            },
        }
        with _serve(_document(tmp_path / "agent.yaml", ai), tmp_path) as served:
            async with caller(served, backends) as (leg, ear):
                recorder = Recorder()
                recorder.attach(leg)
                await ear.until_quiet()
                await leg.say("Where is my order please?")
                await _until(lambda: "/hook" in web.answered, 60, "the webhook's answer")
                replied = web.answered["/hook"]
                await asyncio.sleep(7.0)  # the agent's reply, then the background music alone
                await leg.hangup("customer-ended-call")
    (_, asked) = next(request for request in web.requests if request[0] == "/hook")
    # While the function ran, the caller heard the filler (the function's own, from its `fillers`).
    waiting = recorder.pcm(asked, replied)
    assert sum(1 for at in recorder.voiced_times() if asked <= at < replied) * 0.02 > 0.8
    filler = await heard(backends, waiting)
    assert "moment" in filler or "look" in filler, filler
    # After it, playback_bg's WAV file plays to the caller (looping: `wait: false`).
    assert recorder.best_tone(MUSIC_HZ, since=replied + 2.0) > 0.6
    assert recorder.best_tone(MUSIC_HZ, until=asked) < 0.2  # and not before the function ran


# ---------------------------------------------------------------- hangup_delay_ms


async def test_the_documents_hangup_delay_passes_between_the_goodbye_and_the_bye(
    tmp_path: Path, backends: SpeechBackends
) -> None:
    script = [{"text": 'Hello from Acme. <imsagent_hangup endword="Goodbye!"/>'}]
    with ModelThread({"agent": script}) as model:
        ai = {
            "prompt": {"text": "You are Frank."},
            "params": {"llm_base_url": model.base_url("agent"), "hangup_delay_ms": 2000},
        }
        with _serve(_document(tmp_path / "agent.yaml", ai), tmp_path) as served:
            async with caller(served, backends) as (leg, _ear):
                recorder = Recorder()
                recorder.attach(leg)
                byes: list[float] = []
                ended = asyncio.ensure_future(leg.wait_ended())  # done as the BYE is taken
                ended.add_done_callback(lambda _: byes.append(time.monotonic()))
                await until_ended(leg)
                await ended
                await asyncio.sleep(0)
    bye = byes[0]
    voiced = recorder.voiced_times()
    assert voiced, "the caller heard nothing"
    # The goodbye's last frame arrived, then 2 s of silence frames, then the BYE (default: 0.2 s).
    assert bye - voiced[-1] > 1.2, bye - voiced[-1]
    assert any(at > voiced[-1] + 1.0 and _rms(frame) < 50 for at, frame in recorder.frames)


# ---------------------------------------------------------------- the guard on play() URLs


async def test_background_music_from_a_private_address_is_refused_unless_the_document_allows_it(
    tmp_path: Path, backends: SpeechBackends
) -> None:
    script = [{"text": "Hello, this is Frank."}]
    with ModelThread({"agent": script}) as model, web_server(_music()) as web:
        ai = {
            "prompt": {"text": "You are Frank."},
            "params": {"llm_base_url": model.base_url("agent"), "background_file": f"{web.url}/music.wav"},
        }
        with _serve(_document(tmp_path / "agent.yaml", ai), tmp_path) as served:
            async with caller(served, backends) as (leg, ear):
                recorder = Recorder()
                recorder.attach(leg)
                await ear.until_quiet()
                await asyncio.sleep(1.5)
                await leg.hangup("customer-ended-call")
            refusals = _refusals(served)
            noted = served.logs(msg="play-source-failed")  # the call's timeline, as the server logs it
    assert web.requests == []  # nothing was sent to the private address
    assert refusals and "127.0.0.1" in refusals[0] and "swaig_allow_private_urls" in refusals[0], refusals
    assert noted and noted[0]["data"]["source"] == f"{web.url}/music.wav", noted
    assert "refused: 127.0.0.1 is a private or loopback address" in noted[0]["data"]["reason"], noted
    assert recorder.best_tone(MUSIC_HZ) < 0.2


def _refusals(served: Served) -> list[str]:
    return [line for line in served.raw if "cannot play" in line and "refused" in line]


# ---------------------------------------------------------------- warm transfer


def _role(messages: list[dict[str, Any]], tools: Any) -> str:
    """`callgate serve` sends every role to one llm_base_url: tell them apart by the request."""
    names = {str((tool.get("function") or {}).get("name")) for tool in tools or [] if isinstance(tool, dict)}
    if "connect_to_caller" in names:
        return "consult"
    system = " ".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    return "agent" if "Riley" in system else "summary"


def _warm_support(llm_url: str, hold_music: str) -> dict[str, Any]:
    """The warm-transfer example agent, its model and hold music on loopback."""
    document = yaml.safe_load((EXAMPLES / "agents" / "warm_support.yaml").read_text())
    ai: dict[str, Any] = document["sections"]["main"][0]["ai"]
    ai["params"] = {"llm_base_url": llm_url, "swaig_allow_private_urls": True}
    ai["SWAIG"]["functions"][0]["transfer"]["hold_music"] = hold_music
    return ai


@dataclass
class Supervisor:
    """The supervisor's phone: a second UA on loopback, reached through `--sip-proxy`, that answers."""

    backends: SpeechBackends
    recorder: Recorder = field(default_factory=Recorder)
    ear: Ear = field(default_factory=Ear)
    leg: SipCall | None = None

    async def on_call(self, call: SipCall) -> None:
        self.recorder.attach(call)
        call.use_speech(self.backends.synthesizer(SpeechSettings()), self.ear)
        self.leg = call
        await call.answer()
        await call.wait_ended()


async def _tones_cross_the_bridge(caller_leg: SipCall, caller_rec: Recorder, supervisor: Supervisor) -> None:
    """Each side plays its tone until the other side's recording holds it (the bridge is up)."""
    assert supervisor.leg is not None
    caller_leg.use_speech(ToneSynthesizer(700.0), None)
    supervisor.leg.use_speech(ToneSynthesizer(1300.0), supervisor.ear)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        start = time.monotonic()
        words = "one two three four five six seven eight nine ten"
        await asyncio.gather(caller_leg.say(words), supervisor.leg.say(words))
        await asyncio.sleep(0.5)
        heard_by_caller = caller_rec.best_tone(1300.0, since=start)
        heard_by_supervisor = supervisor.recorder.best_tone(700.0, since=start)
        if heard_by_caller > 0.6 and heard_by_supervisor > 0.6:
            return
    raise AssertionError(
        f"no two-way audio: caller {heard_by_caller:.2f}, supervisor {heard_by_supervisor:.2f}"
    )


async def test_warm_transfer_consult_agent_briefs_the_supervisor_then_the_bridge_carries_both_ways(
    tmp_path: Path, backends: SpeechBackends
) -> None:
    scripts = {
        "agent": [
            {"text": "Hi, this is Riley from Acme Internet."},
            {
                "tool_calls": [
                    {"name": "transfer_to_supervisor", "arguments": {"destination": "+15550002222"}}
                ]
            },
        ],
        "summary": [{"text": "Ann's internet has been down since Monday."}],
        "consult": [
            {"text": "Hi Sam, I have Ann on hold. Her internet is down since Monday. Can you take her?"},
            {"tool_calls": [{"name": "connect_to_caller", "arguments": {}}]},
        ],
    }
    supervisor = Supervisor(backends)
    phone = SipEndpoint(SipConfig(host="127.0.0.1", port=0), on_call=supervisor.on_call)
    await phone.start()
    try:
        with ModelThread(scripts, classify=_role) as model, web_server(_music()) as web:
            ai = _warm_support(model.base_url(SHARED), f"{web.url}/hold.wav")
            proxy = ["--sip-proxy", f"sip:callgate:secret@127.0.0.1:{phone.port}"]
            with _serve(_document(tmp_path / "agent.yaml", ai), tmp_path, extra=proxy) as served:
                async with caller(served, backends) as (leg, ear):
                    recorder = Recorder()
                    recorder.attach(leg)
                    await ear.until_quiet()
                    asked = time.monotonic()
                    await leg.say("I want to speak to a supervisor please.")
                    await _until(lambda: supervisor.leg is not None, 60, "the supervisor's phone to ring")
                    await supervisor.ear.until_quiet(quiet=2.5, limit=60)  # the consult agent's briefing
                    briefing = await heard(backends, supervisor.ear.audio())
                    assert supervisor.leg is not None
                    await supervisor.leg.say("Sure, put her through.")
                    await _tones_cross_the_bridge(leg, recorder, supervisor)
                    await leg.hangup("customer-ended-call")
                roles = [request.role for request in model.requests]
    finally:
        await phone.stop()
    # The consult agent spoke to the supervisor's leg, and only there.
    assert "internet" in briefing and "monday" in briefing, briefing  # (whisper hears "Ann" badly)
    # The caller heard the transfer's msg, then the hold music fetched from the loopback URL.
    music_at = recorder.first_tone(MUSIC_HZ, since=asked)
    assert music_at is not None, "the caller never heard the hold music"
    assert [path for path, _ in web.requests] and web.requests[0][0] == "/hold.wav"
    told = await heard(backends, recorder.pcm(asked, music_at))
    assert "while i get a" in told and "for you" in told, told  # the msg ("supervisor": heard badly)
    assert "monday" not in told
    assert roles.count("consult") == 2 and roles.count("summary") == 1, roles


# ---------------------------------------------------------------- an IMS transfer's msg and err_msg


async def test_an_ims_transfers_msg_then_its_err_msg_are_heard_when_the_refer_fails(
    tmp_path: Path, backends: SpeechBackends
) -> None:
    command = (
        '<imsagent_transfer_call callee="+15550002222" '
        'err_msg="Sorry, nobody in sales can take your call right now." msg="Transferring you now."/>'
    )
    script = [{"text": command}]  # at once: no caller speech to recognise first
    document = yaml.safe_load((EXAMPLES / "agents" / "transfer_ims.yaml").read_text())
    with ModelThread({"agent": script}) as model:
        document["sections"]["main"][0]["ai"]["params"] = {"llm_base_url": model.base_url("agent")}
        agent = tmp_path / "agent.yaml"
        agent.write_text(yaml.safe_dump(document))
        with _serve(agent, tmp_path) as served:
            # The caller's phone answers the REFER 405 (it cannot transfer): the transfer fails.
            async with caller(served, backends) as (leg, ear):
                await _until(lambda: ear.voiced_seconds() > 2.5, 60, "the msg and the err_msg")
                await ear.until_quiet()
                await leg.hangup("customer-ended-call")
    told = await heard(backends, ear.audio())
    assert "transferring" in told and "nobody" in told and "right now" in told, told  # not the default
    assert told.index("transferring") < told.index("nobody")
