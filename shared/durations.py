"""Durations as users write them: "200ms", "30s", "5m", "1h", "1h30m", or a number of seconds."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")


def parse_duration(value: Any) -> timedelta:
    """Parse a duration; raise ValueError naming the bad value."""
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: expected e.g. '30s' or a number of seconds")
    elif isinstance(value, int | float):
        result = _checked(value, lambda: timedelta(seconds=value))
    elif isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        ms = sum(float(n) * _UNITS_MS[u] for n, u in _PART.findall(value.strip()))
        result = _checked(value, lambda: timedelta(milliseconds=ms))
    else:
        raise ValueError(
            f"invalid duration {value!r}: use a number with a unit (200ms, 30s, 5m, 1h) "
            "or a number of seconds"
        )
    if result < timedelta(0):
        raise ValueError(f"invalid duration {value!r}: must not be negative")
    return result


def _checked(value: Any, build: Callable[[], timedelta]) -> timedelta:
    try:
        return build()
    except OverflowError:
        raise ValueError(f"invalid duration {value!r}: too large") from None


def format_duration(value: timedelta) -> str:
    """The shortest exact form: 90 s → "1m30s", 0.2 s → "200ms"."""
    ms = round(value.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        size = _UNITS_MS[unit]
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _WHOLE.pattern, "examples": ["200ms", "30s", "5m"]},
                {"type": "number", "minimum": 0},
            ]
        }
    ),
]
