"""The leg's ear on real audio: espeak-ng speech → 8 kHz μ-law → the real Silero VAD → real Whisper."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import numpy as np
import pytest

from callgate.speech.audio import split_frames
from callgate.speech.backends import SpeechBackends
from callgate.speech.base import Listener, PartialsSwitch, SpeechError
from callgate.speech.endpoint import Phase
from callgate.speech.listener import SpeechListener
from callgate.speech.settings import SpeechSettings
from callgate.speech.stt_whisper import WhisperRecognizer
from callgate.speech.tts_espeak import EspeakSynthesizer
from callgate.speech.vad import SileroVad
from callgate.telephony.base import CallerSpeech, CallEvent, SpeechStarted
from callgate.telephony.clock import SystemClock

from .conftest import silence_frames, telephone

pytestmark = pytest.mark.timeout(120)


async def spoken(text: str, rate: int = 8000, *, trim: bool = False) -> list[bytes]:
    pcm = await EspeakSynthesizer("en-US").synthesize(text, sample_rate=rate)
    if trim:  # drop the silence espeak-ng ends with: the test counts the silence itself
        x = np.frombuffer(pcm, dtype="<i2")
        pcm = pcm[: 2 * (int(np.flatnonzero(np.abs(x) > 300)[-1]) + 1)]
    return split_frames(telephone(pcm) if rate == 8000 else pcm, rate)


class Ear:
    """A listener and the events it reported."""

    def __init__(self, recognizer: object, end_of_speech_ms: int = 700, rate: int = 8000) -> None:
        self.events: list[CallEvent] = []
        self.errors: list[SpeechError] = []
        self.arrived = asyncio.Event()
        self.listener = SpeechListener(
            recognizer,  # type: ignore[arg-type]
            SileroVad(rate),
            sink=self._sink,
            clock=SystemClock(),
            sample_rate=rate,
            end_of_speech_ms=end_of_speech_ms,
            language="en",
            on_error=self.errors.append,
        )

    def _sink(self, event: CallEvent) -> None:
        self.events.append(event)
        self.arrived.set()

    async def final(self, timeout: float = 60) -> CallerSpeech:
        async def wait() -> CallerSpeech:
            while True:
                finals = [e for e in self.events if isinstance(e, CallerSpeech) and e.final]
                if finals:
                    return finals[0]
                self.arrived.clear()
                await self.arrived.wait()

        return await asyncio.wait_for(wait(), timeout)

    def feed(self, frames: list[bytes]) -> None:
        for frame in frames:
            self.listener.feed(frame)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


async def test_the_caller_is_heard(whisper: WhisperRecognizer) -> None:
    ear = Ear(whisper)
    assert isinstance(ear.listener, Listener)
    ear.feed(silence_frames(25) + await spoken("I want to cancel my order.") + silence_frames(40))
    final = await ear.final()
    assert {"cancel", "order"} <= words(final.text)
    assert ear.events[0] == SpeechStarted()  # the onset is reported before the transcript
    assert [type(e) for e in ear.events] == [SpeechStarted, CallerSpeech]
    await ear.listener.aclose()


async def test_two_utterances_in_order(whisper: WhisperRecognizer) -> None:
    ear = Ear(whisper)
    ear.feed(await spoken("Can I speak to the billing department please?") + silence_frames(40))
    ear.feed(await spoken("Goodbye, thank you.") + silence_frames(40))
    await ear.final()
    while len([e for e in ear.events if isinstance(e, CallerSpeech)]) < 2:
        ear.arrived.clear()
        await asyncio.wait_for(ear.arrived.wait(), 60)
    kinds = [type(e) for e in ear.events]
    assert kinds == [SpeechStarted, SpeechStarted, CallerSpeech, CallerSpeech] or kinds == [
        SpeechStarted,
        CallerSpeech,
        SpeechStarted,
        CallerSpeech,
    ]
    first, second = [e.text for e in ear.events if isinstance(e, CallerSpeech)]
    assert len({"billing", "department", "speak"} & words(first)) >= 2
    assert "goodbye" in words(second)
    await ear.listener.aclose()


async def test_silence_and_noise_produce_no_events(whisper: WhisperRecognizer) -> None:
    ear = Ear(whisper)
    rng = np.random.default_rng(3)
    noise = telephone((rng.normal(0, 1000, 8000 * 3)).astype("<i2").tobytes())  # -30 dBFS hiss
    ear.feed(silence_frames(100) + split_frames(noise, 8000) + silence_frames(100))
    await ear.listener.aclose()
    assert ear.events == [] and ear.errors == []


@pytest.mark.parametrize(("timeout_ms", "hangover"), [(700, 35), (300, 15)])
async def test_end_of_speech_timeout_counted_in_frames(
    whisper: WhisperRecognizer, timeout_ms: int, hangover: int
) -> None:
    ear = Ear(whisper, end_of_speech_ms=timeout_ms)
    vad = ear.listener.vad
    verdicts: list[bool] = []
    idle_at: list[int] = []

    def judged(frame: bytes) -> bool:
        verdicts.append(vad.is_speech(frame))
        return verdicts[-1]

    ear.listener.vad = type("Recorded", (), {"is_speech": staticmethod(judged), "reset": vad.reset})()
    for frame in [*(await spoken("Yes.", trim=True)), *silence_frames(100)]:
        ear.feed([frame])
        if not idle_at and len(verdicts) > 10 and ear.listener.endpointer.phase is Phase.IDLE:
            idle_at.append(len(verdicts))
    last_speech = max(i for i, v in enumerate(verdicts, 1) if v)
    # Counted in frames from the last frame the real VAD called speech: exactly the timeout.
    assert idle_at == [last_speech + hangover]
    await ear.final()
    await ear.listener.aclose()


async def test_hold_drops_a_half_heard_utterance(whisper: WhisperRecognizer) -> None:
    ear = Ear(whisper)
    frames = await spoken("Please hold on while I look for my account number.")
    ear.feed(frames[: len(frames) // 2])
    assert ear.events == [SpeechStarted()]
    ear.listener.pause()
    ear.feed(frames[len(frames) // 2 :] + silence_frames(40))  # not heard: on hold
    ear.listener.resume()
    ear.feed(silence_frames(40))
    await ear.listener.aclose()
    assert ear.events == [SpeechStarted()]


async def test_partials_while_asked_for(whisper: WhisperRecognizer) -> None:
    ear = Ear(whisper)
    ear.listener.set_partials(True)
    frames = await spoken("I want to cancel my order and get a refund.")
    for i, frame in enumerate(frames):
        ear.listener.feed(frame)
        task = ear.listener._partial_task
        if i % 10 == 0 and task is not None and not task.done():
            await task  # recognition keeps up with real time; feeding here does not
    ear.feed(silence_frames(40))
    final = await ear.final()
    partials = [e for e in ear.events if isinstance(e, CallerSpeech) and not e.final]
    assert partials and ear.events.index(partials[0]) < ear.events.index(final)
    assert "cancel" in words(" ".join(p.text for p in partials))
    await ear.listener.aclose()


async def test_no_partials_unless_asked(whisper: WhisperRecognizer) -> None:
    ear = Ear(whisper)
    ear.feed(
        await spoken("I want to cancel my order, and I would like a refund for the shipping.")
        + silence_frames(40)
    )
    await ear.final()
    assert all(e.final for e in ear.events if isinstance(e, CallerSpeech))
    await ear.listener.aclose()


async def test_sixteen_khz_legs_are_heard_too(whisper: WhisperRecognizer) -> None:
    ear = Ear(whisper, rate=16000)
    ear.feed(await spoken("What time do you open tomorrow?", rate=16000) + silence_frames(40, 16000))
    assert {"time", "open", "tomorrow"} <= words((await ear.final()).text)
    await ear.listener.aclose()


async def test_wrong_frame_size_is_refused(whisper: WhisperRecognizer) -> None:
    ear = Ear(whisper)
    with pytest.raises(ValueError, match="320 bytes"):
        ear.listener.feed(b"\x00" * 100)


class Failing:
    def __init__(self) -> None:
        self.calls = 0

    async def transcribe(self, audio: bytes, **_: object) -> str:
        self.calls += 1
        if self.calls == 1:
            raise SpeechError("endpoint down")
        return "second try"


async def test_a_recognition_failure_is_reported_and_the_next_utterance_is_heard() -> None:
    ear = Ear(Failing())
    ear.feed(await spoken("Hello there.") + silence_frames(40))
    ear.feed(await spoken("Hello again.") + silence_frames(40))
    final = await ear.final()
    assert final.text == "second try"
    assert [str(e) for e in ear.errors] == ["endpoint down"]
    assert [type(e) for e in ear.events] == [SpeechStarted, SpeechStarted, CallerSpeech]
    await ear.listener.aclose()


async def test_backends_build_the_listener_from_settings(whisper: WhisperRecognizer) -> None:
    backends = SpeechBackends(env={})
    backends._whisper = whisper  # the session's model: loading it again would only cost time
    events: list[CallEvent] = []
    settings = SpeechSettings.from_params({"end_of_speech_timeout": 400}, hints=["refund"])
    listener = backends.listener(settings, sink=events.append, clock=SystemClock(), sample_rate=8000)
    assert isinstance(listener, SpeechListener)
    assert listener.endpointer.hangover_frames == 20 and listener.prompt == "refund"
    assert listener.recognizer is backends.recognizer(settings)  # one model for every call
    assert isinstance(listener, PartialsSwitch)
    await backends.warm_up(settings)  # already loaded: nothing to do
    listener.feed((await spoken("Goodbye."))[0])
    await listener.aclose()


def test_the_vad_skips_the_model_on_a_quiet_line() -> None:
    vad = SileroVad(8000)
    rng = np.random.default_rng(5)
    floor = split_frames(telephone(rng.normal(0, 30, 8000 * 4).astype("<i2").tobytes()), 8000)
    assert not any(vad.is_speech(f) for f in floor[:50])  # -60 dBFS line noise: not speech
    adapted = vad.model_runs  # webrtcvad passes a few frames while it learns the noise floor
    assert not any(vad.is_speech(f) for f in floor[50:])
    assert vad.model_runs == adapted  # then the gate hears nothing: Silero never runs


async def test_the_vad_gate_lets_speech_through_to_silero() -> None:
    vad = SileroVad(8000)
    verdicts = [vad.is_speech(f) for f in await spoken("Can I speak to the billing department please?")]
    assert vad.model_runs > 0 and sum(verdicts) > len(verdicts) / 2


def test_the_vad_loads_no_ggml_library() -> None:
    """llama-cpp-python (the embedded model) ships libggml-base.so.0; a VAD built on another ggml
    with the same soname breaks whichever of the two loads second, in the one `serve` process."""
    code = (
        "from callgate.speech.vad import SileroVad\n"
        "vad = SileroVad(8000)\n"
        "import numpy as np\n"
        "rng = np.random.default_rng(1)\n"
        "for _ in range(50):\n"
        "    vad.is_speech((rng.normal(0, 3000, 160)).astype('<i2').tobytes())\n"
        "assert vad.model_runs > 0\n"
        "maps = open('/proc/self/maps').read()\n"
        "print('ggml' in maps)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
