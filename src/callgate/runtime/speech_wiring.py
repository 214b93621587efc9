"""Speech for a call's leg: the document's speech settings and the process's shared backends,
attached before the leg is answered (DESIGN §8). A channel without audio (console, sim) needs none."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from callgate.runtime.call_host import CallNotReady, CallPreparer, calling_ai
from callgate.speech.backends import SpeechBackends
from callgate.speech.base import TELEPHONE_RATE, Listener, SpeechError
from callgate.speech.settings import SpeechSettings
from callgate.swml.models import AI
from callgate.telephony.base import Call
from callgate.telephony.clock import Clock

log = logging.getLogger(__name__)

_NOT_IN_A_CALL = object()


def speech_preparer(backends: SpeechBackends, clock: Clock, env: Mapping[str, str]) -> CallPreparer:
    """Gives every leg that takes speech (`use_speech`) its voice and its ear. Without a voice the
    call is refused (SpeechError); with a voice but no ear, it is answered only for the apology."""

    async def prepare(call: Call, ai: AI | None) -> None:
        problem = attach_speech(call, ai, backends, clock, env)
        if problem is not None:
            raise CallNotReady(problem, can_speak=True)

    return prepare


def dialled_leg_preparer(
    backends: SpeechBackends, clock: Clock, env: Mapping[str, str]
) -> Callable[[Call], None]:
    """The channel's `prepare_leg` hook: a leg dialled for a call (a warm transfer's supervisor, where
    the consult agent speaks; a `connect` leg) gets speech with the calling document's settings.
    Legs that arrive outside any call — inbound INVITEs — are left to the host's `speech_preparer`."""

    def prepare_leg(call: Call) -> None:
        ai = calling_ai.get(_NOT_IN_A_CALL)
        if ai is _NOT_IN_A_CALL:
            return
        assert ai is None or isinstance(ai, AI)
        problem = attach_speech(call, ai, backends, clock, env)
        if problem is not None:
            log.warning("dialled leg %s: %s", call.call_id, problem)

    return prepare_leg


def attach_speech(
    call: Call, ai: AI | None, backends: SpeechBackends, clock: Clock, env: Mapping[str, str]
) -> str | None:
    """Attach voice and ear to a leg that takes speech; the problem, if it cannot hear."""
    use_speech = getattr(call, "use_speech", None)
    deliver = getattr(call, "deliver", None)
    if use_speech is None or deliver is None:
        return None
    problem: str | None = None
    try:
        settings = SpeechSettings.from_params(
            ai.params if ai is not None else None,
            languages=ai.languages if ai is not None else (),
            hints=ai.hints if ai is not None else (),
            env=env,
        )
    except SpeechError as error:
        problem, settings = f"speech settings: {error}", SpeechSettings()
    synthesizer = backends.synthesizer(settings)
    listener: Listener | None = None
    if problem is None:
        try:
            listener = backends.listener(settings, sink=deliver, clock=clock, sample_rate=TELEPHONE_RATE)
        except SpeechError as error:
            problem = f"speech recognition: {error}"
    # Partials only while the agent speaks, and only if barge-in counts partial transcripts.
    use_speech(synthesizer, listener, partials_while_speaking=settings.enable_barge.partial)
    if settings.hangup_delay_ms is not None and hasattr(call, "hangup_delay_ms"):
        call.hangup_delay_ms = settings.hangup_delay_ms  # SIP/Twilio: waited before BYE/REFER
    return problem
