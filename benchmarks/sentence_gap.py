"""Silence between an agent's sentences on a real SIP call, with and without prefetch.

    .venv/bin/python benchmarks/sentence_gap.py                 # espeak-ng and a 300 ms loopback TTS
    .venv/bin/python benchmarks/sentence_gap.py --calls 5 --tts-delay 0.5

The agent's leg (a `SipEndpoint` on 127.0.0.1) speaks a five-sentence reply through the agent's
`Speaker`, queued at once as a streaming model would hand it over; a caller leg (a second endpoint,
dialling) keeps every frame it receives. Each sentence's audio is known exactly (the engines are
deterministic; μ-law encoding is per sample), so its frames are found in the received stream and
the gap is the number of frames between one sentence's last frame and the next one's first: the
silence the caller hears *beyond* the synthesised audio itself.

Voices: espeak-ng (offline default, one process per sentence) and an OpenAI-compatible
`/v1/audio/speech` server on loopback that answers with espeak-ng's audio after `--tts-delay`
seconds (a hosted TTS's time to answer). "off" is the same leg and voice saying the sentences one
after another without announcing them (`SpeaksAhead.prefetch_speech`): each sentence is synthesised
when its `say()` begins, as before `speech.ahead`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import statistics
from collections.abc import AsyncIterator
from typing import Any

REPLY = [
    "Thanks for calling the front desk.",
    "Your order shipped yesterday afternoon.",
    "It should arrive on Thursday.",
    "You will get a tracking number by text.",
    "Is there anything else I can help with?",
]
FRAME = 320  # bytes: 20 ms of 8 kHz PCM16


@contextlib.asynccontextmanager
async def loopback_tts(audio: dict[str, bytes], delay: float) -> AsyncIterator[str]:
    """`/v1/audio/speech` on 127.0.0.1: the WAV for the request's `input`, after `delay` seconds."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length:\s*(\d+)", head)
        body = json.loads(await reader.readexactly(int(length.group(1)) if length else 0))
        await asyncio.sleep(delay)
        wav = audio[body["input"]]
        reply = f"HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nContent-Length: {len(wav)}\r\n"
        writer.write(reply.encode() + b"Connection: close\r\n\r\n" + wav)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    finally:
        server.close()


def heard_as(pcm: bytes) -> bytes:
    """`pcm` as the caller receives it: 20 ms frames (the last padded) through μ-law and back."""
    from callgate.channels.sip.audio import split_frames
    from callgate.speech.codecs import decode, encode

    return b"".join(decode(encode(frame, "PCMU"), "PCMU") for frame in split_frames(pcm))


def gaps(received: bytes, sentences: list[bytes]) -> list[int]:
    """Frames between consecutive sentences' audio in the received stream."""
    found: list[tuple[int, int]] = []
    start = 0
    for audio in sentences:
        at = received.find(audio, start)
        while at >= 0 and at % FRAME:
            at = received.find(audio, at + 1)
        if at < 0:
            raise RuntimeError("a sentence's audio was not received whole")
        found.append((at // FRAME, (at + len(audio)) // FRAME))
        start = at + len(audio)
    return [nxt[0] - cur[1] for cur, nxt in itertools.pairwise(found)]


async def one_call(engine: str, prefetch: bool, tts_url: str, expected: list[bytes]) -> list[int]:
    from callgate.agent.speaker import Speaker
    from callgate.channels.sip import SipCall, SipConfig, SipEndpoint
    from callgate.speech.backends import SpeechBackends
    from callgate.speech.settings import SpeechSettings
    from callgate.telephony.base import Destination

    settings = SpeechSettings(tts_base_url=tts_url) if engine == "loopback" else SpeechSettings()
    voice = SpeechBackends().synthesizer(settings)  # a fresh phrase cache: every sentence is synthesised
    done = asyncio.Event()

    async def agent(call: SipCall) -> None:
        call.use_speech(voice, None)
        await call.answer()
        if prefetch:
            speaker = Speaker(call, [])
            for sentence in REPLY:
                speaker.say_soon(sentence)
            await speaker.drain()
        else:
            for sentence in REPLY:
                await call.say(sentence)
        await call.hangup("assistant-ended-call")
        done.set()

    async def refuse(call: SipCall) -> None:
        await call.hangup("rejected")

    agents = SipEndpoint(SipConfig(host="127.0.0.1", port=0, hangup_delay_ms=100), on_call=agent)
    callers = SipEndpoint(SipConfig(host="127.0.0.1", port=0), on_call=refuse)
    await agents.start()
    await callers.start()
    try:
        caller = await callers.switch.dial(
            Destination(kind="sip", value=f"sip:agent@127.0.0.1:{agents.port}"), "+15550100", 10
        )
        frames: list[bytes] = []
        caller.on_frame_received = frames.append
        await asyncio.wait_for(done.wait(), 60)
        await asyncio.wait_for(caller.wait_ended(), 10)
    finally:
        await callers.stop()
        await agents.stop()
    return gaps(b"".join(frames), [heard_as(pcm) for pcm in expected])


async def main_async(calls: int, tts_delay: float) -> list[dict[str, Any]]:
    from callgate.speech.audio import to_wav
    from callgate.speech.tts_espeak import EspeakSynthesizer

    espeak = EspeakSynthesizer("en-US")
    expected = [await espeak.synthesize(s, sample_rate=8000) for s in REPLY]
    wavs = {s: to_wav(pcm, 8000) for s, pcm in zip(REPLY, expected, strict=True)}
    rows = []
    async with loopback_tts(wavs, tts_delay) as url:
        for engine in ("espeak", "loopback"):
            for prefetch in (False, True):
                measured: list[int] = []
                for _ in range(calls):
                    measured += await one_call(engine, prefetch, url, expected)
                rows.append({"engine": engine, "prefetch": prefetch, "gaps": measured})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=3, help="calls per row (4 sentence boundaries each)")
    parser.add_argument("--tts-delay", type=float, default=0.3, help="the loopback TTS's answer time, s")
    args = parser.parse_args()
    rows = asyncio.run(main_async(args.calls, args.tts_delay))
    print("| voice | prefetch | boundaries | silent frames between sentences: median / max | ms (median) |")
    print("|---|---|---|---|---|")
    for row in rows:
        name = "espeak-ng" if row["engine"] == "espeak" else f"loopback TTS ({1000 * args.tts_delay:.0f} ms)"
        values = row["gaps"]
        median = statistics.median(values)
        print(
            f"| {name} | {'on' if row['prefetch'] else 'off'} | {len(values)} | "
            f"{median:g} / {max(values)} | {20 * median:.0f} |"
        )


if __name__ == "__main__":
    main()
