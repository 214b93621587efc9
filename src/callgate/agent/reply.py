"""One streamed model reply turned into speech and at most one call-control command.

Text is cut into sentences and queued on the speaker as it streams, so speech starts before the
reply is complete. IMS markup never reaches speech; the first command wins, and nothing after it is
spoken (a hang-up's endword is queued in its place).
"""

from __future__ import annotations

from collections.abc import Callable

from callgate.agent.decisions import Hangup, Transfer
from callgate.agent.speaker import Speaker
from callgate.llm.commands import BadCommand, CommandFilter, HangupCommand, Piece, Speech, TransferCommand
from callgate.llm.sentences import SentenceSplitter
from callgate.telephony.base import EndedReason


class ReplySpeech:
    def __init__(
        self,
        speaker: Speaker,
        *,
        text_commands: bool,
        note: Callable[..., None],
        on_sentence: Callable[[], None] | None = None,
    ) -> None:
        self._speaker = speaker
        self._note = note
        self._on_sentence = on_sentence  # told each time a sentence goes to speech (reply deadline)
        self._commands = CommandFilter(enabled=text_commands)
        self._splitter = SentenceSplitter(eager=True)  # first audio as soon as a sentence is surely over
        self._parts: list[str] = []
        self.hangup: Hangup | None = None
        self.transfer: Transfer | None = None

    @property
    def text(self) -> str:
        """The reply as the model wrote it (markup included): what the history keeps."""
        return "".join(self._parts)

    @property
    def command(self) -> bool:
        return self.hangup is not None or self.transfer is not None

    def feed(self, text: str) -> None:
        self._parts.append(text)
        self._handle(self._commands.feed(text))

    def finish(self) -> None:
        """The reply is over (or broke off): speak what is still held back."""
        self._handle(self._commands.flush())
        self._flush_sentences()

    def _flush_sentences(self) -> None:
        for sentence in self._splitter.flush():
            self._say(sentence)

    def _say(self, sentence: str) -> None:
        self._speaker.say_soon(sentence)
        if self._on_sentence is not None and sentence.strip():
            self._on_sentence()

    def _handle(self, pieces: list[Piece]) -> None:
        for piece in pieces:
            if isinstance(piece, Speech):
                if not self.command:  # a command ends the reply's speech
                    for sentence in self._splitter.feed(piece.text):
                        self._say(sentence)
            elif isinstance(piece, BadCommand):
                self._note("bad-command", raw=piece.raw, reason=piece.reason)
            elif self.command:
                self._note("command-ignored", raw=getattr(piece, "raw", ""), why="a command came first")
            elif isinstance(piece, HangupCommand):
                self._speaker.protect()  # from the command on, nothing of this turn is cut
                self._flush_sentences()
                self._note("command", command="hangup", endword=piece.endword)
                if piece.endword:
                    self._speaker.say_soon(piece.endword)
                self.hangup = Hangup(EndedReason.ASSISTANT_ENDED_CALL, "imsagent_hangup")
            elif isinstance(piece, TransferCommand):
                self._speaker.protect()
                self._flush_sentences()
                self._note("command", command="transfer", callee=piece.callee)
                self.transfer = Transfer(
                    destination=piece.callee,
                    source="ims",
                    caller_id=piece.caller or None,
                    msg=piece.msg or None,
                    err_msg=piece.err_msg or None,
                    origin="model",
                )
