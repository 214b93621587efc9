"""Voice-to-voice latency over real SIP calls: the caller's end of speech → the agent's first audio.

    .venv/bin/python benchmarks/voice_latency.py                      # N = 1 and 20 concurrent calls
    .venv/bin/python benchmarks/voice_latency.py --calls 1,5,20 --turns 6

The agent side runs in its own process, as `callgate serve` would: one `SipEndpoint` on 127.0.0.1,
each inbound call a `CallRunner` with offline speech from `SpeechBackends` (Silero VAD, Whisper base
int8 in one worker thread, espeak-ng), the default `end_of_speech_timeout` of 700 ms. The model is
a loopback stand-in (`callgate.scenario.model_server`, in the caller's process) that streams a
different short sentence every turn, so no reply comes from the phrase cache and the figure is
callgate's own VAD + end-of-speech wait + STT + engine + TTS + RTP pacing time.

The callers are SIP user agents in this process (the same SIP channel, dialling out): each says an
espeak-ng sentence over RTP (trimmed so its last frame is speech), and the clock starts when that
last frame has been sent; it stops at the first received RTP frame that carries sound. Each call
takes `--turns` turns. The agent process reports its CPU (threads and espeak-ng children
included) and memory over the load phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

DOCUMENT: dict[str, Any] = {
    "version": "1.0.0",
    "sections": {
        "main": [
            {"answer": {}},
            {
                "ai": {
                    "prompt": {"text": "You are the front desk of a small shop. Answer in one sentence."},
                    "params": {"wait_for_user": True},
                }
            },
        ]
    },
}

CALLER_LINES = [
    "I want to cancel my order.",
    "What time do you open tomorrow?",
    "Can I speak to the billing department please?",
    "My parcel has not arrived yet.",
    "Do you have this jacket in blue?",
    "Thank you, that is all I needed.",
]

VOICED_PEAK = 500  # a received frame whose peak exceeds this carries sound (silence frames are 0)
REPLY_DONE_GAP = 0.6  # seconds without sound after the reply started: the agent has finished


def reply_text(index: int) -> str:
    return f"Sure, I can help you with request number {index}, one moment please."


# ---------------------------------------------------------------- the agent side (its own process)


def _usage() -> dict[str, float]:
    t = os.times()
    status = Path("/proc/self/status").read_text()
    fields = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith("Vm")}
    return {
        "cpu": t.user + t.system + t.children_user + t.children_system,
        "wall": time.monotonic(),
        "rss_mb": int(fields.get("VmRSS", 0)) / 1024,
        "hwm_mb": int(fields.get("VmHWM", 0)) / 1024,
    }


async def serve(llm_url: str, end_of_speech_ms: int) -> None:
    from callgate.channels.sip import SipCall, SipConfig, SipEndpoint
    from callgate.llm.factory import make_model
    from callgate.runtime.call_runner import CallRunner, CallSetup
    from callgate.speech.backends import SpeechBackends
    from callgate.speech.settings import SpeechSettings
    from callgate.swaig.context import CallContext
    from callgate.swml.loader import parse_document
    from callgate.telephony.base import CallerSpeech
    from callgate.telephony.clock import SystemClock

    before = _usage()
    env = {"CALLGATE_LLM_URL": llm_url, "OPENAI_API_KEY": "bench-key"}
    clock = SystemClock()
    DOCUMENT["sections"]["main"][1]["ai"]["params"]["end_of_speech_timeout"] = end_of_speech_ms
    document = parse_document(DOCUMENT, source="<bench>").document
    ai = document.find_ai()
    assert ai is not None
    backends = SpeechBackends(env=os.environ)
    settings = SpeechSettings.from_params(ai.params, languages=ai.languages, hints=ai.hints, env=os.environ)
    await backends.warm_up(settings)
    http = httpx.AsyncClient()
    stats: dict[str, Any] = {"calls": 0, "errors": 0, "stt_ms": [], "engine_ms": [], "tts_ms": []}
    # Where the time goes: STT (each final transcript), engine (final transcript delivered → the
    # first sentence handed to the synthesiser: the agent and the model stand-in), TTS (synthesis).
    whisper = backends.recognizer(settings)
    transcribe = whisper.transcribe

    async def timed_transcribe(audio: bytes, **kwargs: Any) -> str:
        started = time.monotonic()
        text = await transcribe(audio, **kwargs)
        stats["stt_ms"].append(1000 * (time.monotonic() - started))
        return text

    whisper.transcribe = timed_transcribe  # type: ignore[method-assign]

    class TimedVoice:
        def __init__(self, inner: Any, heard_at: list[float]) -> None:
            self.inner = inner
            self.heard_at = heard_at

        async def synthesize(self, text: str, *, sample_rate: int, language: str | None = None) -> bytes:
            started = time.monotonic()
            if self.heard_at:
                stats["engine_ms"].append(1000 * (started - self.heard_at.pop()))
            pcm = await self.inner.synthesize(text, sample_rate=sample_rate, language=language)
            stats["tts_ms"].append(1000 * (time.monotonic() - started))
            return bytes(pcm)

    def model_for(role: str, ai: Any) -> Any:
        return make_model(ai.params.llm_base_url, ai.params.ai_model, env, clock=clock)

    async def on_call(call: SipCall) -> None:
        stats["calls"] += 1

        def failed(_error: Exception) -> None:
            stats["errors"] += 1

        heard_at: list[float] = []

        def sink(event: Any) -> None:
            if isinstance(event, CallerSpeech) and event.final:
                heard_at[:] = [time.monotonic()]
            call.deliver(event)

        listener = backends.listener(settings, sink=sink, clock=clock, sample_rate=8000, on_error=failed)
        call.use_speech(TimedVoice(backends.synthesizer(settings), heard_at), listener)
        context = CallContext(caller_id_num=call.from_number, caller_id_name="", to_number=call.to_number)
        setup = CallSetup(
            document=document,
            call=call,
            clock=clock,
            http=http,
            model_for=model_for,
            context=context,
            env=env,
        )
        try:
            await CallRunner(setup).run()
        finally:
            await listener.aclose()

    endpoint = SipEndpoint(SipConfig(host="127.0.0.1", port=0), clock=clock, on_call=on_call)
    await endpoint.start()
    loaded = _usage()
    print(json.dumps({"port": endpoint.port, "model_mb": loaded["rss_mb"] - before["rss_mb"]}), flush=True)
    loop = asyncio.get_running_loop()
    mark = loaded
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if line == "mark":
            mark = _usage()
            print(json.dumps({"ok": True}), flush=True)
        elif line == "report":
            now = _usage()
            report = {
                "cpu_s": now["cpu"] - mark["cpu"],
                "wall_s": now["wall"] - mark["wall"],
                "rss_base_mb": mark["rss_mb"],
                "rss_peak_mb": now["hwm_mb"],
                **{k: float(np.mean(v)) if isinstance(v, list) and v else v for k, v in stats.items()},
            }
            for key in ("stt_ms", "engine_ms", "tts_ms"):
                stats[key] = []
            print(json.dumps(report), flush=True)
        else:  # "quit" or end of input
            break
    await endpoint.stop()
    await http.aclose()


# ---------------------------------------------------------------- the callers (this process)


class TrimmedVoice:
    """espeak-ng with its leading and trailing silence cut: the last frame sent is speech."""

    def __init__(self) -> None:
        from callgate.speech.tts_espeak import EspeakSynthesizer

        self.inner = EspeakSynthesizer("en-US")
        self.cache: dict[str, bytes] = {}

    async def synthesize(self, text: str, *, sample_rate: int, language: str | None = None) -> bytes:
        if text not in self.cache:
            pcm = await self.inner.synthesize(text, sample_rate=sample_rate)
            x = np.frombuffer(pcm, dtype="<i2")
            loud = np.flatnonzero(np.abs(x) > VOICED_PEAK)
            self.cache[text] = pcm[2 * int(loud[0]) : 2 * (int(loud[-1]) + 1)]
        return self.cache[text]


async def one_call(
    switch: Any, port: int, turns: int, voice: TrimmedVoice, rng: random.Random, latencies: list[float]
) -> int:
    from callgate.telephony.base import Destination

    call = await switch.dial(Destination(kind="sip", value=f"sip:agent@127.0.0.1:{port}"), "+15550100", 10)
    call.use_speech(voice, None)
    heard = asyncio.Event()
    last_sound = [0.0]
    listening = [False]

    def on_frame(frame: bytes) -> None:
        if np.abs(np.frombuffer(frame, dtype="<i2")).max() > VOICED_PEAK:
            last_sound[0] = time.monotonic()
            if listening[0]:
                listening[0] = False
                heard.set()

    call.on_frame_received = on_frame
    missed = 0
    await asyncio.sleep(rng.uniform(0.3, 1.5))
    for _ in range(turns):
        heard.clear()
        await call.say(rng.choice(CALLER_LINES))
        end_of_speech = time.monotonic()
        listening[0] = True
        try:
            await asyncio.wait_for(heard.wait(), 30)
        except TimeoutError:
            missed += 1
            listening[0] = False
            continue
        latencies.append(last_sound[0] - end_of_speech)
        while time.monotonic() - last_sound[0] < REPLY_DONE_GAP:  # let the agent finish its reply
            await asyncio.sleep(0.1)
        await asyncio.sleep(rng.uniform(0.3, 1.0))
    await call.hangup("customer-ended-call")
    return missed


def _ask(proc: subprocess.Popen[str], command: str) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    return dict(json.loads(proc.stdout.readline()))


async def run_round(calls: int, turns: int, seed: int, end_of_speech_ms: int) -> dict[str, Any]:
    from callgate.channels.sip import SipCall, SipConfig, SipEndpoint
    from callgate.scenario.model_server import ScriptedModelServer
    from callgate.telephony.clock import SystemClock

    script = [{"text": reply_text(i)} for i in range(calls * turns + 50)]
    async with ScriptedModelServer({"agent": script}) as llm:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", llm.base_url("agent"), "--eos", str(end_of_speech_ms)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            loop = asyncio.get_running_loop()
            assert proc.stdout is not None
            hello = json.loads(await loop.run_in_executor(None, proc.stdout.readline))

            async def refuse(call: SipCall) -> None:
                await call.hangup("rejected")

            callers = SipEndpoint(SipConfig(host="127.0.0.1", port=0), clock=SystemClock(), on_call=refuse)
            await callers.start()
            voice = TrimmedVoice()
            for line in CALLER_LINES:
                await voice.synthesize(line, sample_rate=8000)
            rng = random.Random(seed)
            latencies: list[float] = []
            await loop.run_in_executor(None, _ask, proc, "mark")
            missed = await asyncio.gather(
                *(
                    one_call(
                        callers.switch, hello["port"], turns, voice, random.Random(rng.random()), latencies
                    )
                    for _ in range(calls)
                )
            )
            await asyncio.sleep(0.5)
            report = await loop.run_in_executor(None, _ask, proc, "report")
            await callers.stop()
        finally:
            with contextlib.suppress(Exception):
                assert proc.stdin is not None
                proc.stdin.write("quit\n")
                proc.stdin.flush()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    ms = sorted(1000 * x for x in latencies)
    return {
        "calls": calls,
        "turns": len(ms),
        "missed": sum(missed),
        "p50": float(np.percentile(ms, 50)) if ms else float("nan"),
        "p99": float(np.percentile(ms, 99)) if ms else float("nan"),
        "max": max(ms) if ms else float("nan"),
        "cpu_pct_per_call": 100 * report["cpu_s"] / report["wall_s"] / calls,
        "mb_per_call": (report["rss_peak_mb"] - report["rss_base_mb"]) / calls,
        "model_mb": hello["model_mb"],
        "recognition_errors": report["errors"],
        "stt_ms": report["stt_ms"],
        "engine_ms": report["engine_ms"],
        "tts_ms": report["tts_ms"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", default="1,20", help="comma-separated numbers of concurrent calls")
    parser.add_argument("--turns", type=int, default=5, help="turns per call")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--eos", type=int, default=700, help="params.end_of_speech_timeout (ms)")
    parser.add_argument("--serve", metavar="LLM_URL", help="(internal) run the agent side")
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve, args.eos))
        return
    print(f"end_of_speech_timeout {args.eos} ms, load average before: {os.getloadavg()[0]:.1f}")
    print(
        "| concurrent calls | turns | p50 ms | p99 ms | max ms | agent CPU per call | agent memory per call "
        "| speech models resident | mean STT ms | mean engine ms | mean TTS ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for calls in [int(n) for n in args.calls.split(",") if n.strip()]:
        r = asyncio.run(run_round(calls, args.turns, args.seed, args.eos))
        notes = f" ({r['missed']} unanswered)" if r["missed"] else ""
        print(
            f"| {r['calls']} | {r['turns']}{notes} | {r['p50']:.0f} | {r['p99']:.0f} | {r['max']:.0f} "
            f"| {r['cpu_pct_per_call']:.1f} % of a core | {r['mb_per_call']:.1f} MB | {r['model_mb']:.0f} MB "
            f"| {r['stt_ms']:.0f} | {r['engine_ms']:.0f} | {r['tts_ms']:.0f} |",
            flush=True,
        )
        print(f"load average after N={calls}: {os.getloadavg()[0]:.1f}", file=sys.stderr)
        if r["recognition_errors"]:
            print(f"note: {r['recognition_errors']} recognition errors", file=sys.stderr)


if __name__ == "__main__":
    main()
