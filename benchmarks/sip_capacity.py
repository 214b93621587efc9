"""SIP capacity: N concurrent calls with two-way G.711 audio on one callgate process.

Each call is placed by sipp (`benchmarks/sip/caller_audio.xml`): INVITE offering PCMA, then sipp
replays 2 × 7 s of PCMA (its stock g711a.pcap) while callgate's side of the call says a fixed
3-second prompt over and over (a tone sweep standing in for TTS; no model, no STT) and listens
(a listener that only counts frames). Everything runs on loopback.

Figures, per N (default 10, 50, 100), over a window in which all N calls are up:
- CPU per call: user+system CPU of this process (the endpoint; sipp and dumpcap are other
  processes) ÷ window ÷ N, in % of one core;
- outgoing RTP spacing p50/p99/max: gaps between consecutive packets of each call as captured on
  the wire (dumpcap on lo), and the same from the pacer's send stamps (`SipCall.on_frame_sent`);
- loss: outgoing = sequence gaps in the capture; incoming = frames heard vs frames sipp sent;
- memory per call: (VmRSS with N calls up − VmRSS before) ÷ N.

Run: `.venv/bin/python benchmarks/sip_capacity.py [--calls 10 50 100] [--window 8]`; each N runs in
a fresh process (needs sipp
and dumpcap, as root for the capture). The machine's load average is printed with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import math
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from callgate.channels.sip import SipCall, SipConfig, SipEndpoint
from callgate.telephony.base import CallEnded

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "sip" / "caller_audio.xml"
PCAP_PLAY_MS = 7100  # sipp's g711a.pcap lasts 7.05 s; the scenario plays it twice
SIPP_PACKETS_PER_PLAY = 236  # 30 ms packets of PCMA in that pcap
FRAMES_PER_PLAY = SIPP_PACKETS_PER_PLAY * 240 // 160  # as 20 ms frames


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Prompt:
    """A fixed 3 s 'prompt': a 300→3000 Hz sweep, synthesized once."""

    def __init__(self) -> None:
        t = np.arange(3 * 8000) / 8000
        sweep = np.sin(2 * math.pi * (300 * t + 450 * t**2))
        self.pcm = bytes((6000 * sweep).astype("<i2").tobytes())

    async def synthesize(self, text: str, *, sample_rate: int, language: str | None = None) -> bytes:
        return self.pcm


class CountingEar:
    def __init__(self) -> None:
        self.frames = 0

    def feed(self, frame: bytes) -> None:
        self.frames += 1

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    async def aclose(self) -> None: ...


@dataclass
class Run:
    calls: int
    prompt: Prompt = field(default_factory=Prompt)
    legs: list[SipCall] = field(default_factory=list)
    stamps: dict[str, list[float]] = field(default_factory=dict)
    heard: dict[str, int] = field(default_factory=dict)
    window: tuple[float, float] = (0.0, 0.0)

    async def on_call(self, call: SipCall) -> None:
        ear = CountingEar()
        call.use_speech(self.prompt, ear)
        stamps = self.stamps.setdefault(call.call_id, [])
        call.on_frame_sent = stamps.append
        self.legs.append(call)
        await call.answer()
        try:
            while not call.ended:
                await call.say("the fixed prompt")
        except CallEnded:
            pass
        finally:
            self.heard[call.call_id] = ear.frames


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def read_pcap(path: Path) -> list[tuple[float, int, bytes]]:
    """(time, source port, UDP payload) of every UDP datagram in a classic pcap file."""
    data = path.read_bytes()
    if len(data) < 24:
        return []
    magic = struct.unpack_from("<I", data)[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    link = {1: 14, 113: 16}.get(struct.unpack_from(endian + "I", data, 20)[0], 14)
    out = []
    offset = 24
    while offset + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack_from(endian + "IIII", data, offset)
        ip = data[offset + 16 + link : offset + 16 + caplen]
        offset += 16 + caplen
        if len(ip) < 28 or ip[9] != 17:
            continue
        header = (ip[0] & 0x0F) * 4
        (src,) = struct.unpack_from("!H", ip, header)
        out.append((sec + frac / (1e9 if nano else 1e6), src, ip[header + 8 :]))
    return out


async def measure(calls: int, window: float, workdir: Path) -> dict[str, float]:
    run = Run(calls)
    endpoint = SipEndpoint(SipConfig(host="127.0.0.1", port=0, hangup_delay_ms=0), on_call=run.on_call)
    await endpoint.start()
    media_port = free_port()
    pcap = workdir / f"out-{calls}.pcap"
    dumpcap = await asyncio.create_subprocess_exec(
        "timeout",
        "120",
        shutil.which("dumpcap") or "dumpcap",
        "-i",
        "lo",
        "-P",
        "-q",
        "-f",
        f"udp dst port {media_port}",
        "-w",
        str(pcap),
        "-B",
        "64",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert dumpcap.stderr is not None
    while b"Capturing on" not in await dumpcap.stderr.readline():
        pass
    gc.collect()
    rss_before = rss_kb()
    rate = max(10, calls // 2)  # calls per second while ramping up
    sipp = await asyncio.create_subprocess_exec(
        "timeout",
        "120",
        shutil.which("sipp") or "sipp",
        f"127.0.0.1:{endpoint.port}",
        "-sf",
        str(SCENARIO),
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port()),
        "-mp",
        str(media_port),
        "-m",
        str(calls),
        "-l",
        str(calls),
        "-r",
        str(rate),
        "-d",
        str(PCAP_PLAY_MS),
        "-timeout",
        "90s",
        "-nostdin",
        "-trace_err",
        "-error_file",
        str(workdir / f"sipp-{calls}.log"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=workdir,
    )
    loop = asyncio.get_running_loop()
    while len(endpoint.active_calls) < calls and sipp.returncode is None:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    rss_up = rss_kb()
    cpu0 = sum(os.times()[:2])
    start = loop.time()
    wall_start = time.time()
    await asyncio.sleep(window)
    cpu = sum(os.times()[:2]) - cpu0
    end = loop.time()
    wall_end = time.time()
    up_at_end = len(endpoint.active_calls)
    await asyncio.wait_for(sipp.wait(), 90)
    await asyncio.sleep(0.5)
    dumpcap.terminate()
    await dumpcap.wait()
    await endpoint.stop()

    pacer_gaps: list[float] = []
    for stamps in run.stamps.values():
        inside = [t for t in stamps if start <= t <= end]
        pacer_gaps += [(b - a) * 1000 for a, b in itertools.pairwise(inside)]
    wire_gaps: list[float] = []
    expected = lost = 0
    by_port: dict[int, list[tuple[float, int]]] = {}
    for at, src, payload in read_pcap(pcap):
        if wall_start <= at <= wall_end and len(payload) >= 12:
            by_port.setdefault(src, []).append((at, struct.unpack_from("!H", payload, 2)[0]))
    for packets in by_port.values():
        wire_gaps += [(b[0] - a[0]) * 1000 for a, b in itertools.pairwise(packets)]
        span = (packets[-1][1] - packets[0][1]) % 65536 + 1
        expected += span
        lost += span - len(packets)
    heard = list(run.heard.values())
    incoming_expected = 2 * FRAMES_PER_PLAY
    incoming_loss = (
        sum(max(0, incoming_expected - h) for h in heard) / (incoming_expected * len(heard)) if heard else 1.0
    )
    return {
        "calls": calls,
        "up_during_window": min(up_at_end, calls),
        "cpu_pct_per_call": 100 * cpu / (end - start) / calls,
        "cpu_pct_total": 100 * cpu / (end - start),
        "wire_p50_ms": statistics.median(wire_gaps) if wire_gaps else float("nan"),
        "wire_p99_ms": percentile(wire_gaps, 99) if wire_gaps else float("nan"),
        "wire_max_ms": max(wire_gaps) if wire_gaps else float("nan"),
        "pacer_p50_ms": statistics.median(pacer_gaps) if pacer_gaps else float("nan"),
        "pacer_p99_ms": percentile(pacer_gaps, 99) if pacer_gaps else float("nan"),
        "out_loss_pct": 100 * lost / expected if expected else float("nan"),
        "in_loss_pct": 100 * incoming_loss,
        "kb_per_call": (rss_up - rss_before) / calls,
        "sipp_ok": float(sipp.returncode == 0),
    }


COLUMNS = (
    f"{'calls':>5} {'up':>4} {'CPU%/call':>9} {'CPU% all':>8} {'wire p50':>8} {'p99':>6} {'max':>6} "
    f"{'pacer p50':>9} {'p99':>6} {'out loss%':>9} {'in loss%':>8} {'kB/call':>8} sipp"
)


def row(r: dict[str, float]) -> str:
    return (
        f"{r['calls']:>5.0f} {r['up_during_window']:>4.0f} "
        f"{r['cpu_pct_per_call']:>9.2f} {r['cpu_pct_total']:>8.1f} "
        f"{r['wire_p50_ms']:>8.2f} {r['wire_p99_ms']:>6.2f} {r['wire_max_ms']:>6.2f} "
        f"{r['pacer_p50_ms']:>9.2f} {r['pacer_p99_ms']:>6.2f} {r['out_loss_pct']:>9.3f} "
        f"{r['in_loss_pct']:>8.3f} {r['kb_per_call']:>8.0f} {'ok' if r['sipp_ok'] else 'FAILED'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--one", action="store_true", help="measure one N in this process (internal)")
    args = parser.parse_args()
    for tool in ("sipp", "dumpcap"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (make system-deps installs it)")
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(asyncio.run(measure(args.calls[0], args.window, Path(tmp)))))
        return
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; cores: {os.cpu_count()}")
    print(COLUMNS)
    for n in args.calls:
        # A fresh process per N, so memory per call is not flattered by a previous run's freed heap.
        done = subprocess.run(
            [sys.executable, __file__, "--one", "--calls", str(n), "--window", str(args.window)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            print(f"{n:>5} FAILED: {done.stderr.strip()[-400:]}")
            continue
        print(row(json.loads(done.stdout.strip().splitlines()[-1])), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
