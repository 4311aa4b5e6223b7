"""Pure cron math: parse and validate expressions, compute fire times. Time is always an argument.

Expressions have 5 fields (minute first) or 6 with seconds first, or a macro such as `@hourly`.
Fire times are computed in the job's IANA timezone and returned as aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def validate_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA timezone {name!r}") from None


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    has_seconds: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Validate an expression; raise ValueError saying what is wrong."""
        expr = " ".join(expression.split())
        if expr.lower() in _MACROS:
            return cls(expr.lower(), has_seconds=False)
        fields = expr.split(" ")
        if len(fields) not in (5, 6):
            raise ValueError(
                f"invalid cron expression {expression!r}: expected 5 fields "
                f"(minute hour day month weekday) or 6 with seconds first, got {len(fields)}"
            )
        has_seconds = len(fields) == 6
        try:
            croniter(expr, datetime(2000, 1, 1, tzinfo=UTC), second_at_beginning=has_seconds)
            if not croniter.is_valid(expr, second_at_beginning=has_seconds, strict=True):
                raise ValueError("out of range")
        except (CroniterError, ValueError, KeyError) as exc:
            raise ValueError(f"invalid cron expression {expression!r}: {exc}") from None
        return cls(expr, has_seconds)

    def iter_after(self, after: datetime, tz: ZoneInfo) -> Iterator[datetime]:
        """Fire times strictly after `after` (aware), as aware UTC datetimes, in order."""
        if after.tzinfo is None:
            raise ValueError("after must be timezone-aware")
        it = croniter(self.expression, after.astimezone(tz), second_at_beginning=self.has_seconds)
        while True:
            fire = it.get_next(datetime)
            yield fire.astimezone(UTC)

    def next_fires(self, after: datetime, tz: ZoneInfo, count: int) -> list[datetime]:
        it = self.iter_after(after, tz)
        return [next(it) for _ in range(count)]
