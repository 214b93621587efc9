from __future__ import annotations

import pytest

from callgate.speech.backends import SpeechBackends


@pytest.fixture(scope="session")
def backends() -> SpeechBackends:
    """The test process's own ears and voice (Whisper loads once for all the voice tests)."""
    return SpeechBackends({})
