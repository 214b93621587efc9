"""A stand-in for Twilio at the vendor's door, on loopback, speaking Twilio's real wire formats.

- Webhooks: it calls callgate's `/twilio/voice`, `/twilio/status` and the `<Dial>` callbacks as
  Twilio does: form-encoded POSTs signed with `X-Twilio-Signature` = base64(HMAC-SHA1(auth token,
  public URL + the POST parameters sorted by name, each name followed by its value)). The signing is
  written out here by hand, not borrowed from the twilio package callgate verifies with.
- The public URL is a tunnel's (`https://agent.tunnel.test`): like ngrok, the stand-in maps it to
  callgate's local listener, so signatures are over the public URL while bytes go to loopback.
- Media Streams: for each `<Connect><Stream>` it opens the websocket (the `websockets` package),
  sends `connected` and `start` (with the `<Parameter>`s), then a `media` frame every 20 ms of real
  time — silence, or tone "speech" when the test makes the caller talk. Audio callgate sends is
  queued and played at 20 ms a frame; a `mark` is sent back only when the audio before it has been
  played; `clear` empties the queue and sends back the marks it held.
- REST: a starlette app impersonating api.twilio.com's `/2010-04-01/Accounts/{sid}/Calls.json` and
  `/Calls/{sid}.json`, checking Basic auth, recording every request, acting on it (completing a call
  stops its stream; TwiML `<Dial>`, `<Conference>` and `<Connect><Stream>` are carried out) and
  answering with Twilio's JSON (errors as `{code, message, more_info, status}`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import math
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import numpy as np
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callgate.speech.codecs import encode

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "standin-auth-token-0123456789abcdef"
PUBLIC_URL = "https://agent.tunnel.test"
TWILIO_NUMBER = "+15559870000"
FRAME_SECONDS = 0.02
SILENCE = b"\xff" * 160  # μ-law silence
_sids = itertools.count(1)


def new_sid(prefix: str) -> str:
    return f"{prefix}{next(_sids):032x}"


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """X-Twilio-Signature as Twilio computes it."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def speech_frames(text: str, seconds_per_word: float = 0.12) -> list[bytes]:
    """Caller "speech": a tone as long as the words, as μ-law frames."""
    count = max(5, int(len(text.split()) * seconds_per_word / FRAME_SECONDS))
    t = np.arange(count * 160) / 8000
    pcm = (8000 * np.sin(2 * math.pi * 440 * t)).astype("<i2").tobytes()
    mulaw = encode(pcm, "PCMU")
    return [mulaw[i : i + 160] for i in range(0, len(mulaw), 160)]


@dataclass
class Destination:
    """How a number or SIP URI the stand-in is asked to call behaves."""

    answer: str = "answer"  # answer | busy | no-answer | failed
    after: float = 0.2  # seconds of ringing
    says: list[str] = field(default_factory=list)  # for dialled legs with a stream: said once spoken to


@dataclass
class Utterance:
    """Audio callgate sent between two `say…:end` marks, and when its last frame was played."""

    mark: str
    frames: int
    played_at: float


class FakeStream:
    """Twilio's side of one Media Stream websocket."""

    def __init__(self, standin: TwilioStandIn, call: FakeCall, url: str, parameters: dict[str, str]) -> None:
        self.standin = standin
        self.call = call
        self.url = url
        self.parameters = parameters
        self.sid = new_sid("MZ")
        self._ws: Any = None
        self._out: deque[tuple[str, Any]] = deque()  # ("frame", bytes) | ("mark", name)
        self._in: deque[bytes] = deque()
        self.utterances: list[Utterance] = []
        self._frames_since_mark = 0
        self.received_frames = 0
        self.played: list[bytes] = []  # the μ-law frames Twilio played to the caller, in order
        self.clears = 0
        self.marks_sent_back: list[str] = []
        self.closed = asyncio.Event()
        self.closed_by: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.heard_after_agent: asyncio.Event = asyncio.Event()

    async def open(self) -> None:
        local = self.standin.local(self.url)
        self._ws = await websockets.connect(local, open_timeout=10, close_timeout=2)
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self._send(
            {
                "event": "start",
                "sequenceNumber": "1",
                "start": {
                    "accountSid": ACCOUNT_SID,
                    "streamSid": self.sid,
                    "callSid": self.call.sid,
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": self.parameters,
                },
                "streamSid": self.sid,
            }
        )
        self._tasks = [asyncio.create_task(self._reader()), asyncio.create_task(self._pacer())]

    async def _send(self, message: dict[str, Any]) -> None:
        await self._ws.send(json.dumps(message))

    async def _reader(self) -> None:
        try:
            async for raw in self._ws:
                message = json.loads(raw)
                event = message.get("event")
                assert message.get("streamSid") == self.sid, message
                if event == "media":
                    self._out.append(("frame", base64.b64decode(message["media"]["payload"])))
                elif event == "mark":
                    self._out.append(("mark", message["mark"]["name"]))
                elif event == "clear":
                    self.clears += 1
                    held = [name for kind, name in self._out if kind == "mark"]
                    self._out.clear()
                    for name in held:
                        await self._mark_back(name)
        except websockets.ConnectionClosed:
            pass
        finally:
            if self.closed_by is None:
                self.closed_by = "callgate"
            self.closed.set()

    async def _mark_back(self, name: str) -> None:
        if name.endswith(":end"):
            self.utterances.append(Utterance(name, self._frames_since_mark, time.monotonic()))
            self._frames_since_mark = 0
        self.standin.log("mark-played", self.call.sid, name)
        self.marks_sent_back.append(name)
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._send(
                {"event": "mark", "sequenceNumber": "0", "streamSid": self.sid, "mark": {"name": name}}
            )

    async def _pacer(self) -> None:
        """Every 20 ms of real time: play one queued frame (marks before it go back), send one frame."""
        loop = asyncio.get_running_loop()
        tick = loop.time()
        chunk = 0
        try:
            while not self.closed.is_set():
                while self._out and self._out[0][0] == "mark":
                    await self._mark_back(self._out.popleft()[1])
                if self._out:
                    self.played.append(self._out.popleft()[1])
                    self._frames_since_mark += 1
                    self.received_frames += 1
                while self._out and self._out[0][0] == "mark":
                    await self._mark_back(self._out.popleft()[1])
                frame = self._in.popleft() if self._in else SILENCE
                chunk += 1
                await self._send(
                    {
                        "event": "media",
                        "sequenceNumber": str(chunk + 1),
                        "media": {
                            "track": "inbound",
                            "chunk": str(chunk),
                            "timestamp": str(chunk * 20),
                            "payload": base64.b64encode(frame).decode(),
                        },
                        "streamSid": self.sid,
                    }
                )
                tick += FRAME_SECONDS
                await asyncio.sleep(max(0.0, tick - loop.time()))
        except websockets.ConnectionClosed:
            pass

    @property
    def playing(self) -> bool:
        return any(kind == "frame" for kind, _ in self._out)

    def say(self, text: str) -> None:
        """The far end talks (tone frames, or the stand-in's voice), and its words are noted for the
        test's recognizer."""
        self.call.spoken.append(text)
        if self.standin.voice is None:
            self._in.extend(speech_frames(text))
        else:
            self.standin.spawn(self._voiced(text))

    async def _voiced(self, text: str) -> None:
        assert self.standin.voice is not None
        mulaw = encode(await self.standin.voice(text), "PCMU")
        mulaw += SILENCE[: (-len(mulaw)) % 160]
        self._in.extend(mulaw[i : i + 160] for i in range(0, len(mulaw), 160))

    async def dtmf(self, digit: str) -> None:
        await self._send(
            {
                "event": "dtmf",
                "streamSid": self.sid,
                "sequenceNumber": "0",
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    async def stop(self, by: str = "twilio") -> None:
        """Twilio ends the stream: `stop`, then the socket closes."""
        if self.closed.is_set():
            return
        self.closed_by = by
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._send(
                {
                    "event": "stop",
                    "sequenceNumber": "0",
                    "streamSid": self.sid,
                    "stop": {"accountSid": ACCOUNT_SID, "callSid": self.call.sid},
                }
            )
        await self._ws.close()
        await self._finish()

    async def drop(self) -> None:
        """The connection dies: no stop, no close handshake."""
        self.closed_by = "dropped"
        self._ws.transport.abort()
        await self._finish()

    async def _finish(self) -> None:
        self.closed.set()
        for task in self._tasks:
            task.cancel()
        # Their cancellations are results here (one may be this very task); ours still propagates.
        await asyncio.gather(
            *(t for t in self._tasks if t is not asyncio.current_task()), return_exceptions=True
        )


@dataclass
class FakeCall:
    sid: str
    from_: str
    to: str
    direction: str
    status: str = "ringing"
    status_callback: str | None = None
    streams: list[FakeStream] = field(default_factory=list)
    twiml: list[str] = field(default_factory=list)
    conference: str | None = None
    spoken: deque[str] = field(default_factory=deque)
    dialled: list[dict[str, str]] = field(default_factory=list)

    @property
    def stream(self) -> FakeStream:
        return self.streams[-1]


@dataclass
class RestRequest:
    method: str
    path: str
    form: dict[str, str]
    status: int = 200


class TwilioStandIn:
    def __init__(self, local_base: str = "", auth_token: str = AUTH_TOKEN) -> None:
        self.local_base = local_base  # callgate's listener; PUBLIC_URL is tunnelled there
        self.auth_token = auth_token
        self.calls: dict[str, FakeCall] = {}
        self.destinations: dict[str, Destination] = {}
        self.requests: list[RestRequest] = []
        self.events: list[tuple[float, str, str, str]] = []
        self.files: dict[str, bytes] = {}  # served at base_url + /files/NAME (hold music by URL)
        self.file_requests: list[str] = []
        self.fail_updates: int | None = None  # answer every call update with this HTTP status
        # How the far end's speech sounds: 8 kHz PCM for a text (None: a tone as long as the words).
        self.voice: Callable[[str], Awaitable[bytes]] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: uvicorn.Server | None = None
        self.base_url = ""
        self.http = httpx.AsyncClient(timeout=10)
        self.app = Starlette(
            routes=[
                Route("/2010-04-01/Accounts/{account}/Calls.json", self._create, methods=["POST"]),
                Route("/2010-04-01/Accounts/{account}/Calls/{sid}.json", self._update, methods=["POST"]),
                Route("/files/{name}", self._file, methods=["GET"]),
            ]
        )

    def log(self, kind: str, sid: str, detail: str = "") -> None:
        self.events.append((time.monotonic(), kind, sid, detail))

    def local(self, url: str) -> str:
        """The tunnel: public URL → callgate's local listener."""
        for scheme, local_scheme in (("https://", "http://"), ("wss://", "ws://")):
            public = PUBLIC_URL.replace("https://", scheme)
            if url.startswith(public):
                return self.local_base.replace("http://", local_scheme) + url[len(public) :]
        return url

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await asyncio.wait_for(server.startup(), 10)
        self._server = server
        port = server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for call in self.calls.values():
            for stream in call.streams:
                with contextlib.suppress(Exception):
                    await stream._finish()
                with contextlib.suppress(Exception):
                    await stream._ws.close()
        for task in list(self._tasks):
            task.cancel()
        # Their cancellations are results here (one may be this very task); ours still propagates.
        await asyncio.gather(
            *(t for t in list(self._tasks) if t is not asyncio.current_task()), return_exceptions=True
        )
        if self._server is not None:
            await asyncio.wait_for(self._server.shutdown(), 10)
        await self.http.aclose()

    def spawn(self, coro: Any) -> None:
        self._spawn(coro)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ webhooks to callgate

    async def post(
        self, url: str, params: dict[str, str], *, signature: str | None = "auto"
    ) -> httpx.Response:
        """A signed webhook (signature "auto"), a forged one (any other string) or an unsigned one (None)."""
        headers = {}
        if signature == "auto":
            headers["X-Twilio-Signature"] = twilio_signature(self.auth_token, url, params)
        elif signature is not None:
            headers["X-Twilio-Signature"] = signature
        return await self.http.post(self.local(url), data=params, headers=headers)

    async def place_call(
        self, from_: str = "+15551230000", caller_name: str = "Ann", to: str = TWILIO_NUMBER
    ) -> FakeCall:
        """A caller dials the Twilio number: the voice webhook, then the stream from its TwiML."""
        call = FakeCall(sid=new_sid("CA"), from_=from_, to=to, direction="inbound", status="in-progress")
        call.status_callback = PUBLIC_URL + "/twilio/status"
        self.calls[call.sid] = call
        params = {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "CallSid": call.sid,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "From": from_,
            "To": to,
            "CallerName": caller_name,
        }
        response = await self.post(PUBLIC_URL + "/twilio/voice", params)
        assert response.status_code == 200, response.text
        call.twiml.append(response.text)
        await self._run_twiml(call, response.text)
        return call

    async def status_callback(self, call: FakeCall, status: str) -> None:
        call.status = status
        if call.status_callback:
            params = {
                "AccountSid": ACCOUNT_SID,
                "CallSid": call.sid,
                "CallStatus": status,
                "From": call.from_,
                "To": call.to,
            }
            with contextlib.suppress(httpx.HTTPError):
                await self.post(call.status_callback, params)

    async def hang_up(self, call: FakeCall) -> None:
        """The caller hangs up: the stream stops, the status callback says completed."""
        if call.streams and not call.stream.closed.is_set():
            await call.stream.stop()
        await self.status_callback(call, "completed")

    # ------------------------------------------------------------ TwiML

    async def _run_twiml(self, call: FakeCall, document: str) -> None:
        root = ET.fromstring(document)
        for verb in root:
            if verb.tag == "Connect":
                stream = verb.find("Stream")
                assert stream is not None
                params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
                fake = FakeStream(self, call, stream.get("url", ""), params)
                call.streams.append(fake)
                call.status = "in-progress"
                await fake.open()
                self.log("stream-open", call.sid, fake.sid)
                return
            if verb.tag == "Dial":
                self._spawn(self._dial(call, verb))
                return
            if verb.tag in ("Hangup", "Reject"):
                call.status = "completed"
                return

    async def _leave_stream(self, call: FakeCall) -> None:
        if call.streams and not call.stream.closed.is_set():
            await call.stream.stop(by="twiml")

    async def _dial(self, call: FakeCall, verb: ET.Element) -> None:
        conference = verb.find("Conference")
        if conference is not None:
            call.conference = conference.text
            self.log("conference", call.sid, conference.text or "")
            return
        noun = verb.find("Number")
        if noun is None:
            noun = verb.find("Sip")
        assert noun is not None
        target = (noun.text or "").strip()
        call.dialled.append(
            {"to": target, "callerId": verb.get("callerId", ""), "sendDigits": noun.get("sendDigits", "")}
        )
        self.log("dial", call.sid, target)
        behaviour = self.destinations.get(target.split("?")[0], Destination(answer="failed"))
        await asyncio.sleep(behaviour.after)
        if behaviour.answer == "answer":
            url = noun.get("statusCallback")
            if url:
                await self.post(
                    url,
                    {
                        "AccountSid": ACCOUNT_SID,
                        "CallSid": new_sid("CA"),
                        "ParentCallSid": call.sid,
                        "CallStatus": "in-progress",
                    },
                )
            return
        action = verb.get("action")
        if action:
            params = {
                "AccountSid": ACCOUNT_SID,
                "CallSid": call.sid,
                "CallStatus": "in-progress",
                "DialCallStatus": behaviour.answer,
            }
            response = await self.post(action, params)
            call.twiml.append(response.text)
            await self._run_twiml(call, response.text)

    # ------------------------------------------------------------ the REST API

    def _authorised(self, request: Request) -> bool:
        expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{self.auth_token}".encode()).decode()
        return (
            request.headers.get("authorization") == expected and request.path_params["account"] == ACCOUNT_SID
        )

    @staticmethod
    def _error(status: int, code: int, message: str) -> JSONResponse:
        return JSONResponse(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status_code=status,
        )

    def _resource(self, call: FakeCall) -> dict[str, Any]:
        return {
            "sid": call.sid,
            "account_sid": ACCOUNT_SID,
            "from": call.from_,
            "to": call.to,
            "status": call.status,
            "direction": "outbound-api" if call.direction == "outbound" else "inbound",
            "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call.sid}.json",
        }

    async def _record(self, request: Request) -> RestRequest:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        entry = RestRequest(request.method, request.url.path, form)
        self.requests.append(entry)
        self.log("rest", request.path_params.get("sid", ""), json.dumps(form, sort_keys=True))
        return entry

    async def _file(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.file_requests.append(name)
        body = self.files.get(name)
        return Response(body, media_type="audio/wav") if body is not None else Response(status_code=404)

    async def _create(self, request: Request) -> Response:
        entry = await self._record(request)
        if not self._authorised(request):
            entry.status = 401
            return self._error(401, 20003, "Authenticate")
        form = entry.form
        call = FakeCall(
            sid=new_sid("CA"),
            from_=form.get("From", ""),
            to=form.get("To", ""),
            direction="outbound",
            status="queued",
        )
        call.status_callback = form.get("StatusCallback")
        self.calls[call.sid] = call
        self._spawn(self._ring(call, form.get("Twiml", ""), float(form.get("Timeout", "30"))))
        return JSONResponse(self._resource(call), status_code=201)

    async def _ring(self, call: FakeCall, document: str, timeout: float) -> None:
        behaviour = self.destinations.get(call.to.split("?")[0], Destination(answer="failed"))
        await self.status_callback(call, "ringing")
        if behaviour.answer == "no-answer":
            await asyncio.sleep(min(timeout, 2.0))
            await self.status_callback(call, "no-answer")
            return
        await asyncio.sleep(behaviour.after)
        if call.status != "ringing":
            return  # cancelled by callgate meanwhile
        if behaviour.answer != "answer":
            await self.status_callback(call, behaviour.answer)
            return
        await self.status_callback(call, "in-progress")
        call.twiml.append(document)
        await self._run_twiml(call, document)
        if behaviour.says:
            self._spawn(self._talk(call, list(behaviour.says)))

    async def _talk(self, call: FakeCall, lines: list[str]) -> None:
        """A dialled party answers each thing callgate says to them with their next line."""
        stream = call.stream
        heard = 0
        while lines and not stream.closed.is_set():
            await asyncio.sleep(0.05)
            if len(stream.utterances) > heard and not stream.playing:
                heard = len(stream.utterances)
                await asyncio.sleep(0.2)
                stream.say(lines.pop(0))

    async def _update(self, request: Request) -> Response:
        entry = await self._record(request)
        if not self._authorised(request):
            entry.status = 401
            return self._error(401, 20003, "Authenticate")
        if self.fail_updates is not None:
            entry.status = self.fail_updates
            return self._error(
                self.fail_updates, 20500 if self.fail_updates >= 500 else 20429, "stand-in failure"
            )
        call = self.calls.get(request.path_params["sid"])
        if call is None:
            entry.status = 404
            return self._error(404, 20404, "The requested resource was not found")
        form = entry.form
        if form.get("Status") in ("completed", "canceled"):
            if call.status in ("completed", "canceled"):
                return JSONResponse(self._resource(call))
            await self._leave_stream(call)
            await self.status_callback(call, "completed" if call.status == "in-progress" else "canceled")
            return JSONResponse(self._resource(call))
        if "Twiml" in form:
            if call.status not in ("in-progress",):
                entry.status = 400
                return self._error(400, 21220, "Call is not in-progress. Cannot redirect.")
            call.twiml.append(form["Twiml"])
            await self._leave_stream(call)
            self._spawn(self._run_twiml(call, form["Twiml"]))
        return JSONResponse(self._resource(call))
