"""Hold music and background audio by URL on a Twilio leg: fetched through the document's
private-address guard (runtime.audio_fetch, issue 10 item 1) and streamed to the caller; refused
(and kept in the call's timeline) when the address is private and the document does not allow it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_twilio_calls import GREETING, ixhello, until
from twilio_harness import serve_agent
from twilio_standin import TwilioStandIn

from callgate.speech.audio import to_wav
from callgate.speech.codecs import decode

pytestmark = pytest.mark.timeout(60)

MUSIC_HZ = 440.0


def _music() -> bytes:
    n = np.arange(22050)  # one second at 22.05 kHz: resampled to the stream's 8 kHz
    return to_wav((8000 * np.sin(2 * np.pi * MUSIC_HZ * n / 22050)).astype("<i2").tobytes(), 22050)


def _music_share(frames: list[bytes]) -> float:
    """The share of the last second's energy within ±40 Hz of the music's tone."""
    samples = np.frombuffer(decode(b"".join(frames[-50:]), "PCMU"), dtype="<i2").astype(np.float64)
    if samples.size < 800 or not np.any(samples):
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size))) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1 / 8000)
    return float(spectrum[np.abs(freqs - MUSIC_HZ) < 40].sum() / spectrum.sum())


def _url(standin: TwilioStandIn) -> str:
    return f"{standin.base_url}/files/music.wav"  # the stand-in serves the file too, on loopback


@pytest.mark.parametrize("allowed", [True, False])
async def test_background_music_by_url_goes_through_the_documents_guard(
    tmp_path: Path, allowed: bool
) -> None:
    def document(standin: TwilioStandIn) -> dict[str, Any]:
        standin.files["music.wav"] = _music()
        return ixhello(background_file=_url(standin), swaig_allow_private_urls=allowed)

    async with serve_agent(document, {"agent": [{"text": GREETING}]}, tmp_path) as agent:
        call = await agent.standin.place_call()
        await until(lambda: len(call.stream.utterances) >= 1)  # the greeting has been played
        if allowed:
            await until(lambda: _music_share(call.stream.played) > 0.8)  # then the music alone, looping
        else:
            await until(lambda: bool(agent.runners[0].outcome.timeline.of_kind("play-source-failed")))
        await agent.standin.hang_up(call)
        outcome = await agent.wait_done()
    failures = outcome.timeline.of_kind("play-source-failed")
    if allowed:
        assert agent.standin.file_requests == ["music.wav"] and failures == []
    else:
        assert agent.standin.file_requests == []  # nothing was sent to the private address
        assert failures[0].data["source"] == _url(agent.standin)
        assert "private or loopback" in failures[0].data["reason"]
        assert _music_share(call.stream.played) < 0.2
