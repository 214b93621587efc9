from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def own_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What callgate keeps under the user's data directory (the default store, spooled records of
    an unusable store) stays in the test's own directory; the processes a test starts inherit it."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
