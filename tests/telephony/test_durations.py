from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from callgate.durations import Duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("35s", 35.0),
        ("1.5s", 1.5),
        ("2m", 120.0),
        ("500ms", 0.5),
        ("30m", 1800.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1m 30s", 90.0),
        (" 3 s ", 3.0),
        ("10", 10.0),
        ("2.5", 2.5),
        ("0", 0.0),
        (".5s", 0.5),
        ("2MIN", 120.0),
        (7, 7.0),
        (0.25, 0.25),
    ],
)
def test_parses(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad", ["", "  ", "soon", "3x", "s", "-3s", "-1", "1.2.3s", "3s junk", "nan", "inf", True, -5, None]
)
def test_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)  # type: ignore[arg-type]


class _Model(BaseModel):
    after: Duration = 0.0


def test_pydantic_field() -> None:
    assert _Model.model_validate({"after": "3s"}).after == 3.0
    assert _Model.model_validate({"after": 2}).after == 2.0
    assert _Model().after == 0.0
    with pytest.raises(ValidationError, match="not a duration"):
        _Model.model_validate({"after": "later"})
    with pytest.raises(ValidationError):
        _Model.model_validate({"after": [1]})
