"""The IMS text-command filter: lenient forms, chunk boundaries, malformed and unknown commands."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callgate.llm.commands import (
    MAX_COMMAND_LENGTH,
    BadCommand,
    CommandFilter,
    HangupCommand,
    Piece,
    Speech,
    TransferCommand,
    parse_attributes,
)


def run(text: str, chunks: list[int] | None = None, enabled: bool = True) -> list[Piece]:
    """Feed `text` cut at the given positions, flush, and merge adjacent speech."""
    command_filter = CommandFilter(enabled=enabled)
    cuts = [0, *sorted(chunks or []), len(text)]
    pieces: list[Piece] = []
    for start, end in itertools.pairwise(cuts):
        pieces.extend(command_filter.feed(text[start:end]))
    pieces.extend(command_filter.flush())
    return merge(pieces)


def merge(pieces: list[Piece]) -> list[Piece]:
    merged: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, Speech) and merged and isinstance(merged[-1], Speech):
            merged[-1] = Speech(merged[-1].text + piece.text)
        elif not (isinstance(piece, Speech) and not piece.text):
            merged.append(piece)
    return merged


def speech(pieces: list[Piece]) -> str:
    return "".join(piece.text for piece in pieces if isinstance(piece, Speech))


def commands(pieces: list[Piece]) -> list[Piece]:
    return [piece for piece in pieces if not isinstance(piece, Speech)]


# Every form the IMS docs show (seed 000), plus the lenient variants they imply.
TRANSFER_DOC = (
    '<imsagent_transfer_call caller="111111", callee="123", '
    'err_msg="Sorry, the line is busy.", msg="Transferring your call now..."/>'
)
TRANSFER_UNQUOTED = (
    '<imsagent_transfer_call caller=111111, callee=123456, err_msg="Sorry, the line is busy.", '
    'msg="Transferring your call now..."/>'
)

LENIENT_FORMS: list[tuple[str, Piece]] = [
    ('<imsagent_hangup endword="I\'ll hang up now, goodbye!"/>', HangupCommand("I'll hang up now, goodbye!")),
    ("<imsagent_hangup endword='Goodbye!'/>", HangupCommand("Goodbye!")),
    ('<imsagent_hangup endword="Goodbye!" />', HangupCommand("Goodbye!")),
    ("<imsagent_hangup endword=Goodbye!/>", HangupCommand("Goodbye!")),
    ("<imsagent_hangup endword=Thanks for calling, bye />", HangupCommand("Thanks for calling, bye")),
    ('<imsagent_hangup endword = "Bye" >', HangupCommand("Bye")),
    ("<imsagent_hangup/>", HangupCommand("")),
    ('<IMSAGENT_HANGUP ENDWORD="Bye"/>', HangupCommand("Bye")),
    ("<imsagent_hangup endword=\u201cSee you!\u201d/>", HangupCommand("See you!")),
    ('<imsagent_hangup endword="Fish &amp; chips, bye"/>', HangupCommand("Fish & chips, bye")),
    ('<imsagent_hangup endword="She said "bye" to me"/>', HangupCommand('She said "bye" to me')),
    ('<imsagent_hangup endword="a > b, />ok"/>', HangupCommand("a > b, />ok")),
    (
        TRANSFER_DOC,
        TransferCommand("111111", "123", "Transferring your call now...", "Sorry, the line is busy.", ""),
    ),
    (
        TRANSFER_UNQUOTED,
        TransferCommand("111111", "123456", "Transferring your call now...", "Sorry, the line is busy.", ""),
    ),
    (
        "<imsagent_transfer_call callee='sip:sales@example.com' msg='One moment.'/>",
        TransferCommand("", "sip:sales@example.com", "One moment.", "", ""),
    ),
    (
        '<imsagent_transfer_call caller="1",\n   callee="2", msg="m", err_msg="e" />',
        TransferCommand("1", "2", "m", "e", ""),
    ),
]


def same_command(got: Piece, expected: Piece) -> bool:
    if isinstance(expected, HangupCommand):
        return isinstance(got, HangupCommand) and got.endword == expected.endword
    if isinstance(expected, TransferCommand):
        return isinstance(got, TransferCommand) and (got.caller, got.callee, got.msg, got.err_msg) == (
            expected.caller,
            expected.callee,
            expected.msg,
            expected.err_msg,
        )
    return got == expected


@pytest.mark.parametrize(("markup", "expected"), LENIENT_FORMS)
def test_lenient_forms_parse(markup: str, expected: Piece) -> None:
    pieces = run(f"Sure. {markup} ")
    assert speech(pieces) == "Sure.  "
    (command,) = commands(pieces)
    assert same_command(command, expected), command
    assert getattr(command, "raw", None) == markup


@pytest.mark.parametrize(("markup", "expected"), LENIENT_FORMS)
def test_every_chunk_boundary_gives_the_same_result(markup: str, expected: Piece) -> None:
    text = f"Okay < fine. {markup} Thanks"
    whole = run(text)
    for cut in range(1, len(text)):
        assert run(text, [cut]) == whole, cut
    for cut in range(1, len(text), 7):
        assert run(text, list(range(cut, len(text), 3))) == whole
    assert len(commands(whole)) == 1


def test_command_order_is_kept_between_speech() -> None:
    pieces = run('One. <imsagent_hangup endword="Bye"/> Two. <imsagent_x/> Three.')
    assert [type(piece) for piece in pieces] == [Speech, HangupCommand, Speech, BadCommand, Speech]


def test_only_possible_command_prefixes_are_held() -> None:
    command_filter = CommandFilter()
    assert command_filter.feed("a < b") == [Speech("a < b")]
    assert command_filter.feed(" and <") == [Speech(" and ")]
    assert command_filter.holding == "<"
    assert command_filter.feed("im") == []
    assert command_filter.holding == "<im"
    assert command_filter.feed("x") == [Speech("<imx")]
    assert command_filter.holding == ""
    assert command_filter.feed("<imsagent_hang") == []
    assert command_filter.feed('up endword="x"/> after') == [
        HangupCommand("x", '<imsagent_hangup endword="x"/>'),
        Speech(" after"),
    ]


def test_a_lone_angle_bracket_at_the_end_is_spoken() -> None:
    assert run("3 <") == [Speech("3 <")]
    assert run("x <i") == [Speech("x <i")]


def test_disabled_filter_passes_text_unchanged() -> None:
    text = 'Sure. <imsagent_hangup endword="Bye"/>'
    assert run(text, [3, 9], enabled=False) == [Speech(text)]
    assert CommandFilter(enabled=False).flush() == []


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("<imsagent_reboot now=1/>", "unknown command 'imsagent_reboot'"),
        ("<imsagent_/>", "unknown command"),
        ("<imsagent_hangup-now/>", "unknown command"),
        ("<imsagent_hangup bye/>", "has no value"),
        ('<imsagent_hangup "bye"/>', "unexpected"),
        ("<imsagent_hangup endword=\"bye\" 'oops'/>", "never closed"),
        ('<imsagent_transfer_call msg="Hold on."/>', "without a callee"),
        ('<imsagent_hangup endword="bye', "never closed"),
        ("<imsagent_hang", "never closed"),
        ("<imsag", "ended inside a command"),
    ],
)
def test_malformed_and_unknown_commands_are_reported_not_spoken(text: str, reason_part: str) -> None:
    pieces = run(f"Hello. {text}")
    assert speech(pieces) == "Hello. "
    (bad,) = commands(pieces)
    assert isinstance(bad, BadCommand)
    assert reason_part in bad.reason
    assert bad.raw == text


def test_closing_tags_are_dropped() -> None:
    pieces = run('Bye. <imsagent_hangup endword="Bye"></imsagent_hangup> ')
    assert speech(pieces) == "Bye.  "
    assert commands(pieces) == [HangupCommand("Bye", '<imsagent_hangup endword="Bye">')]


def test_overlong_command_is_given_up_on() -> None:
    text = '<imsagent_hangup endword="' + "a" * (MAX_COMMAND_LENGTH + 10) + '"/> tail'
    pieces = run(text)
    bad = commands(pieces)[0]
    assert isinstance(bad, BadCommand) and "no closing" in bad.reason
    assert run(text, [100, 2000, 2050]) == pieces


def test_parse_attributes_rejects_garbage() -> None:
    assert parse_attributes(" a=\"1\", b=2  c='3'") == {"a": "1", "b": "2", "c": "3"}
    with pytest.raises(ValueError):
        parse_attributes('a="unterminated')
    with pytest.raises(ValueError):
        parse_attributes("=1")


# ---------------------------------------------------------------- property: chunking never matters

_WORDS = st.sampled_from(
    ["Hello", "a < b", "<", "<i", "<ims", "x>y", "'", '"', "=", ",", " ", "Bye!", "\n", "</b>", "<b>"]
)
_MARKUP = st.sampled_from(
    [markup for markup, _ in LENIENT_FORMS] + ["<imsagent_nope a=1/>", "</imsagent_hangup>"]
)


@st.composite
def texts_and_cuts(draw: st.DrawFn) -> tuple[str, list[int]]:
    parts = draw(st.lists(st.one_of(_WORDS, _MARKUP, st.text(max_size=6)), max_size=12))
    text = "".join(parts)
    cuts = draw(st.lists(st.integers(min_value=1, max_value=max(1, len(text) - 1)), max_size=10))
    return text, sorted(set(cut for cut in cuts if 0 < cut < len(text)))


@settings(max_examples=300, deadline=None)
@given(texts_and_cuts())
def test_chunking_never_changes_speech_or_commands(case: tuple[str, list[int]]) -> None:
    text, cuts = case
    assert run(text, cuts) == run(text)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_MARKUP, min_size=1, max_size=4), st.lists(st.text(alphabet="abc .!", max_size=8), max_size=5)
)
def test_markup_never_reaches_speech(markups: list[str], words: list[str]) -> None:
    text = " ".join(word + markup for word, markup in zip(words + [""] * len(markups), markups, strict=False))
    for cuts in ([], list(range(1, len(text), 2)), list(range(1, len(text), 5))):
        spoken = speech(run(text, cuts))
        assert "imsagent" not in spoken.lower()


def test_spoken_text_is_what_the_caller_heard() -> None:
    from callgate.llm.commands import spoken_text

    assert spoken_text('Sure. <imsagent_hangup endword="Thanks, goodbye!"/>') == "Sure. Thanks, goodbye!"
    assert (
        spoken_text('One moment. <imsagent_transfer_call callee="+15550002222" msg="hold on"/>')
        == "One moment."
    )
    assert spoken_text("Plain words.") == "Plain words."
    assert spoken_text('<imsagent_hangup endword=""/>') == ""
