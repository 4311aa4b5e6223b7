"""Cron fire times across daylight-saving changes, on a simulated clock (time is an argument).

The rule: at most one fire per local wall-clock time. A time in the spring-forward gap fires
once at the end of the gap; a time in the autumn overlap fires at its first occurrence only.
"""

from datetime import UTC, datetime, timedelta
from itertools import islice, takewhile
from zoneinfo import ZoneInfo

import pytest

from shared.cron import CronSchedule, validate_timezone

NEW_YORK = validate_timezone("America/New_York")
BERLIN = validate_timezone("Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("tz", "start", "expected"),
    [
        # New York springs forward on 2026-03-08: 02:00 EST becomes 03:00 EDT (07:00 UTC).
        (
            NEW_YORK,
            utc(2026, 3, 7),
            [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)],
        ),
        # Berlin springs forward on 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
        (
            BERLIN,
            utc(2026, 3, 28),
            [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)],
        ),
    ],
)
def test_daily_fire_in_spring_gap_runs_once_at_end_of_gap(
    tz: ZoneInfo, start: datetime, expected: list[datetime]
) -> None:
    assert CronSchedule.parse("30 2 * * *").next_fires(start, tz, 3) == expected


@pytest.mark.parametrize(
    ("tz", "start", "expected"),
    [
        # New York falls back on 2026-11-01: 01:00-01:59 happens in EDT, then again in EST.
        (
            NEW_YORK,
            utc(2026, 10, 31),
            [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
        ),
        # Berlin falls back on 2026-10-25: 02:00-02:59 happens in CEST, then again in CET.
        (
            BERLIN,
            utc(2026, 10, 24),
            [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
        ),
    ],
)
def test_daily_fire_in_autumn_overlap_runs_at_first_occurrence_only(
    tz: ZoneInfo, start: datetime, expected: list[datetime]
) -> None:
    expression = "30 1 * * *" if tz is NEW_YORK else "30 2 * * *"
    assert CronSchedule.parse(expression).next_fires(start, tz, 3) == expected


def _window(expression: str, tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    fires = CronSchedule.parse(expression).iter_after(start, tz)
    return list(takewhile(lambda t: t < end, fires))


def test_every_minute_through_spring_gap_has_no_gap_and_no_double() -> None:
    fires = _window("* * * * *", NEW_YORK, utc(2026, 3, 8, 6), utc(2026, 3, 8, 8))
    # Wall clock 01:00 EST .. 03:59 EDT is two real hours: every UTC minute exactly once.
    assert fires == [utc(2026, 3, 8, 6) + timedelta(minutes=m) for m in range(1, 120)]


def test_every_minute_through_autumn_overlap_skips_the_repeated_hour() -> None:
    fires = _window("* * * * *", NEW_YORK, utc(2026, 11, 1, 4), utc(2026, 11, 1, 8))
    local = [f.astimezone(NEW_YORK) for f in fires]
    walls = [f.replace(tzinfo=None) for f in local]
    assert len(walls) == len(set(walls)), "a wall-clock minute fired twice"
    assert fires == sorted(set(fires))
    # 01:59 EDT (05:59 UTC) is followed by 02:00 EST (07:00 UTC): the EST copy of 01:xx is skipped.
    index = fires.index(utc(2026, 11, 1, 5, 59))
    assert fires[index + 1] == utc(2026, 11, 1, 7)
    # Four real hours, 00:01 EDT .. 02:59 EST: each of those 179 wall-clock minutes once.
    assert len(fires) == 3 * 60 - 1


def test_quarter_hours_in_spring_gap_collapse_into_one_fire() -> None:
    fires = _window("*/15 * * * *", NEW_YORK, utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7, 31))
    assert [f.astimezone(NEW_YORK).strftime("%H:%M%z") for f in fires] == [
        "01:45-0500", "03:00-0400", "03:15-0400", "03:30-0400",
    ]  # fmt: skip


def test_starting_inside_the_repeated_hour_does_not_refire_it() -> None:
    # The ticker restarts at 01:30 EST, when 01:xx EDT has already fired.
    start = utc(2026, 11, 1, 6, 30)
    fires = CronSchedule.parse("*/20 * * * *").next_fires(start, NEW_YORK, 2)
    assert fires == [utc(2026, 11, 1, 7), utc(2026, 11, 1, 7, 20)]


@pytest.mark.parametrize(
    "start", [utc(2026, 3, 8, 5), utc(2026, 11, 1, 4), utc(2026, 3, 29, 0), utc(2026, 10, 25, 0)]
)
@pytest.mark.parametrize("expression", ["*/10 * * * *", "30 1 * * *", "0 2 * * *", "*/7 * * * * *"])
def test_backwards_iteration_mirrors_forwards(expression: str, start: datetime) -> None:
    schedule = CronSchedule.parse(expression)
    tz = BERLIN if start.month in (3, 10) and start.day > 20 else NEW_YORK
    forwards = schedule.next_fires(start, tz, 40)
    backwards = list(islice(schedule.iter_before(forwards[-1], tz), 40))
    assert backwards == forwards[::-1]
