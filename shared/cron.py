"""Pure cron math: parse and validate expressions, compute fire times. Time is always an argument.

Expressions have 5 fields (minute first) or 6 with seconds first, or a macro such as `@hourly`.
Fire times are computed in the job's IANA timezone and returned as aware UTC datetimes.

Daylight-saving changes: a schedule fires at most once per local wall-clock time.
- Spring forward (a gap, e.g. 02:00-02:59 does not exist): a fire time inside the gap fires once,
  at the first instant after the gap (03:00 local), as classic cron does; several gap times of
  one expression collapse into that one fire.
- Autumn back (an overlap, e.g. 01:00-01:59 happens twice): each wall-clock time fires at its
  first occurrence only; the repeated hour fires nothing. A `*/20 * * * *` job therefore runs
  01:00, 01:20, 01:40 (summer time), then 02:00 (standard time), not six times.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
        # croniter walks naive wall-clock time; `_wall_to_utc` applies the DST rules above.
        wall_after = after.astimezone(tz).replace(tzinfo=None)
        it = croniter(self.expression, wall_after, second_at_beginning=self.has_seconds)
        last = after
        while True:
            fire = _wall_to_utc(it.get_next(datetime), tz)
            # Equal or earlier instants are a collapsed gap or the repeated autumn hour.
            if fire > last:
                last = fire
                yield fire

    def iter_before(self, before: datetime, tz: ZoneInfo) -> Iterator[datetime]:
        """Fire times at or before `before` (aware), newest first, as aware UTC datetimes."""
        if before.tzinfo is None:
            raise ValueError("before must be timezone-aware")
        wall_before = before.astimezone(tz).replace(tzinfo=None) + _STEP
        it = croniter(self.expression, wall_before, second_at_beginning=self.has_seconds)
        last: datetime | None = None
        while True:
            fire = _wall_to_utc(it.get_prev(datetime), tz)
            if fire <= before and (last is None or fire < last):
                last = fire
                yield fire

    def next_fires(self, after: datetime, tz: ZoneInfo, count: int) -> list[datetime]:
        it = self.iter_after(after, tz)
        return [next(it) for _ in range(count)]


# Cron's finest unit; a wall time a step past `before` makes get_prev include `before` itself.
_STEP = timedelta(microseconds=1)


def _wall_to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant a naive local wall-clock time fires: its first occurrence, or the end of the
    DST gap it falls into."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    # In a gap, fold=0 reads the wall time with the offset from before the change (an instant
    # after the transition) and fold=1 with the offset from after it (an instant before it).
    low = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return _transition(low, first, tz)


def _transition(low: datetime, high: datetime, tz: ZoneInfo) -> datetime:
    """The first instant in (low, high] with high's UTC offset (zone changes fall on whole
    seconds, and cron times have no fraction)."""
    offset = high.astimezone(tz).utcoffset()
    lo, hi = int(low.timestamp()), int(high.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == offset:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)
