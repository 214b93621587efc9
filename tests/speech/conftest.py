"""Speech test fixtures: real espeak-ng audio, the real Whisper model (once per session), and a
loopback HTTP server speaking OpenAI's `/v1/audio/speech` and `/v1/audio/transcriptions` formats."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from callgate.speech import codecs
from callgate.speech.audio import split_frames, to_wav
from callgate.speech.stt_whisper import WhisperRecognizer


@pytest.fixture(scope="session")
def whisper(tmp_path_factory: pytest.TempPathFactory) -> WhisperRecognizer:
    """The real offline recogniser, its model joined and verified into a session cache, loaded once."""
    recognizer = WhisperRecognizer(cache_dir=tmp_path_factory.mktemp("models"))
    recognizer.load()
    return recognizer


def telephone(pcm: bytes) -> bytes:
    """What a G.711 call delivers: 8 kHz PCM through μ-law and back."""
    return codecs.decode(codecs.encode(pcm, "PCMU"), "PCMU")


def silence_frames(count: int, sample_rate: int = 8000) -> list[bytes]:
    return split_frames(b"\x00" * (sample_rate // 50 * 2 * count), sample_rate)


def tone(freq: float, seconds: float, rate: int, level: float = 8000.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return bytes((level * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes())


# ---------------------------------------------------------------- loopback OpenAI speech server


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)


Reply = tuple[int, str, bytes]  # status, content-type, body


class SpeechServer:
    """A real HTTP server on 127.0.0.1; `handler(request) -> (status, content_type, body)`."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.handler: Callable[[Request], Reply] = lambda _r: (404, "text/plain", b"no handler")
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                ctype = self.headers.get("Content-Type", "")
                if ctype.startswith("application/json"):
                    request.json = json.loads(body)
                elif ctype.startswith("multipart/form-data"):
                    message = BytesParser(policy=HTTP).parsebytes(
                        f"Content-Type: {ctype}\r\n\r\n".encode() + body
                    )
                    for part in message.iter_parts():
                        name = part.get_param("name", header="content-disposition")
                        filename = part.get_filename()
                        payload = part.get_payload(decode=True)
                        if filename:
                            request.files[str(name)] = (filename, part.get_content_type(), payload)
                        else:
                            request.form[str(name)] = payload.decode()
                server.requests.append(request)
                if server.delay:
                    time.sleep(server.delay)
                status, content_type, reply = server.handler(request)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def speech_server() -> Iterator[SpeechServer]:
    server = SpeechServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def wav_reply(pcm: bytes, rate: int) -> Reply:
    return 200, "audio/wav", to_wav(pcm, rate)
