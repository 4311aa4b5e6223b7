"""Misfire policies after a simulated outage: which fires a ticker creates when it comes back."""

from datetime import UTC, datetime, timedelta

import pytest

from services.ticker.misfire import MAX_CATCH_UP, MisfirePolicy, catch_up
from shared.cron import CronSchedule, validate_timezone

UTC_ZONE = validate_timezone("UTC")
EVERY_MINUTE = CronSchedule.parse("* * * * *")
EVERY_SECOND = CronSchedule.parse("* * * * * *")
GRACE = timedelta(seconds=5)
# The last fire before a 10-minute outage, and the moment the ticker is back.
LAST = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
NOW = LAST + timedelta(minutes=10, seconds=30)


def minutes(*values: int) -> list[datetime]:
    return [LAST + timedelta(minutes=m) for m in values]


def plan(
    policy: MisfirePolicy,
    deadline: timedelta | None = None,
    *,
    schedule: CronSchedule = EVERY_MINUTE,
    last: datetime = LAST,
    now: datetime = NOW,
) -> list[datetime]:
    return catch_up(
        schedule,
        UTC_ZONE,
        last=last,
        now=now,
        policy=policy,
        starting_deadline=deadline,
        grace=GRACE,
    )


def test_skip_creates_nothing_for_the_outage() -> None:
    assert plan("skip") == []


def test_run_once_creates_the_latest_missed_time() -> None:
    assert plan("run_once") == minutes(10)


def test_run_all_creates_every_missed_time_oldest_first() -> None:
    assert plan("run_all") == minutes(*range(1, 11))


def test_starting_deadline_bounds_run_all() -> None:
    # now - 5m = 12:05:30, so 12:06 .. 12:10.
    assert plan("run_all", timedelta(minutes=5)) == minutes(6, 7, 8, 9, 10)


def test_starting_deadline_shorter_than_the_lateness_drops_run_once() -> None:
    assert plan("run_once", timedelta(seconds=20)) == []
    assert plan("run_once", timedelta(seconds=40)) == minutes(10)


def test_run_all_is_capped_at_the_newest_hundred() -> None:
    now = LAST + timedelta(minutes=10)
    fires = plan("run_all", schedule=EVERY_SECOND, now=now)
    late = [now - timedelta(seconds=s) for s in range(5, -1, -1)]
    missed = [now - timedelta(seconds=s) for s in range(5 + MAX_CATCH_UP, 5, -1)]
    assert fires == missed + late


@pytest.mark.parametrize("policy", ["skip", "run_once", "run_all"])
def test_fires_late_by_less_than_the_grace_are_created_under_every_policy(
    policy: MisfirePolicy,
) -> None:
    # A leader died at 12:00:00 and its successor took over three seconds later.
    now = LAST + timedelta(seconds=3)
    fires = plan(policy, schedule=EVERY_SECOND, now=now)
    assert fires == [LAST + timedelta(seconds=s) for s in (1, 2, 3)]


def test_nothing_missed_nothing_created() -> None:
    assert plan("run_all", last=NOW, now=NOW) == []
    assert plan("run_all", last=LAST, now=LAST + timedelta(seconds=59)) == []


def test_a_huge_outage_costs_no_more_than_the_cap() -> None:
    ten_years = LAST + timedelta(days=3650)
    fires = plan("run_all", schedule=EVERY_SECOND, now=ten_years)
    assert len(fires) == MAX_CATCH_UP + 6
    assert fires[-1] == ten_years
