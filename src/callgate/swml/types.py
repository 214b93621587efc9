"""Value types SignalWire documents loosely: booleans written as "true"/'false', numbers as strings."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_bool(value: Any) -> Any:
    """Accept SignalWire's boolean forms: true/false and the strings "true"/"false" (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    # Let pydantic produce its own error naming the field.
    return value


def parse_number(value: Any) -> Any:
    """Accept numbers written as strings ("0.6")."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                return value
    return value


FlexBool = Annotated[bool, BeforeValidator(parse_bool)]
FlexFloat = Annotated[float, BeforeValidator(parse_number)]
FlexInt = Annotated[int, BeforeValidator(parse_number)]
