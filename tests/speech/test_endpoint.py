"""End-of-utterance by frame counting (pure: the VAD's verdicts are given frame by frame)."""

from __future__ import annotations

import pytest

from callgate.speech.endpoint import Ended, Endpointer, Partial, Phase, Started

FRAME = b"\x00\x00" * 160


def run(ep: Endpointer, pattern: list[bool]) -> list[tuple[int, object]]:
    return [(i, s) for i, speech in enumerate(pattern) for s in ep.push(FRAME, speech)]


@pytest.mark.parametrize(("timeout_ms", "frames"), [(700, 35), (300, 15), (710, 36), (20, 1)])
def test_end_of_speech_after_exactly_the_timeout(timeout_ms: int, frames: int) -> None:
    ep = Endpointer(timeout_ms, partial_every=10_000)
    signals = run(ep, [True] * 10 + [False] * (frames - 1))
    assert [type(s) for _, s in signals] == [Started]  # one frame short of the timeout: still speaking
    assert ep.phase is Phase.SPEAKING
    (ended,) = ep.push(FRAME, False)
    assert isinstance(ended, Ended) and not ended.forced
    assert ep.phase is Phase.IDLE


def test_pauses_shorter_than_the_timeout_keep_one_utterance() -> None:
    ep = Endpointer(700, partial_every=10_000)
    pattern = ([True] * 20 + [False] * 34) * 3 + [False] * 35
    kinds = [type(s) for _, s in run(ep, pattern)]
    assert kinds == [Started, Ended]


def test_onset_needs_three_speech_frames_and_keeps_the_preroll() -> None:
    ep = Endpointer(100, partial_every=10_000)
    assert run(ep, [True, True, False, True, True, False]) == []  # clicks are not speech
    signals = run(ep, [False] * 20 + [True] * 3)
    assert [(i, type(s)) for i, s in signals] == [(22, Started)]
    (ended,) = [s for _, s in run(ep, [True] * 7 + [False] * 5) if isinstance(s, Ended)]
    # 15 frames of pre-roll (including the 3 onset frames) + 7 speech + the 5 silent frames
    assert ended.frames == 15 + 7 + 5
    assert len(ended.audio) == ended.frames * len(FRAME)


def test_long_silences_are_trimmed_from_the_utterance() -> None:
    ep = Endpointer(700, preroll_frames=3, partial_every=10_000)
    (ended,) = [s for _, s in run(ep, [True] * 10 + [False] * 35) if isinstance(s, Ended)]
    assert ended.frames == 10 + 10  # the speech + 200 ms of the silence that ended it


def test_partials_every_n_frames_of_speech() -> None:
    ep = Endpointer(700, partial_every=30)
    signals = run(ep, [True] * 100)
    partials = [(i, s) for i, s in signals if isinstance(s, Partial)]
    assert [i for i, _ in partials] == [32, 62, 92]  # onset at frame 2, then every 30 frames
    assert partials[1][1].frames > partials[0][1].frames


def test_an_utterance_is_cut_at_the_maximum_length() -> None:
    ep = Endpointer(700, partial_every=10_000, max_frames=100)
    signals = run(ep, [True] * 250)
    ended = [s for _, s in signals if isinstance(s, Ended)]
    assert len(ended) == 2 and all(e.forced and e.frames == 100 for e in ended)
    assert [type(s) for _, s in signals].count(Started) == 3  # speech goes on: a new utterance


def test_reset_drops_the_half_heard_utterance() -> None:
    ep = Endpointer(100, partial_every=10_000)
    run(ep, [True] * 10)
    ep.reset()
    assert ep.phase is Phase.IDLE
    assert run(ep, [False] * 50) == []
