from datetime import UTC, datetime

import pytest

from shared.cron import CronSchedule, validate_timezone

UTC_ZONE = validate_timezone("UTC")


def test_five_fields() -> None:
    fires = CronSchedule.parse("0 9 * * *").next_fires(
        datetime(2026, 1, 1, tzinfo=UTC), UTC_ZONE, 2
    )
    assert fires == [datetime(2026, 1, 1, 9, tzinfo=UTC), datetime(2026, 1, 2, 9, tzinfo=UTC)]


def test_six_fields_have_seconds_first() -> None:
    fires = CronSchedule.parse("*/20 * * * * *").next_fires(
        datetime(2026, 1, 1, tzinfo=UTC), UTC_ZONE, 3
    )
    assert [f.second for f in fires] == [20, 40, 0]


def test_timezone_is_applied() -> None:
    fires = CronSchedule.parse("0 9 * * *").next_fires(
        datetime(2026, 1, 1, tzinfo=UTC), validate_timezone("Europe/Berlin"), 1
    )
    assert fires == [datetime(2026, 1, 1, 8, tzinfo=UTC)]


# Recent croniter releases changed the meaning of some expressions; pin what ours mean.
@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 0 * * 6/1", datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC)),
        ("0 0 1,15 * *", datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 15, tzinfo=UTC)),
        (
            "30 2 * * MON-FRI",
            datetime(2026, 11, 21, tzinfo=UTC),
            datetime(2026, 11, 23, 2, 30, tzinfo=UTC),
        ),
        (
            "@hourly",
            datetime(2026, 11, 21, 5, 1, tzinfo=UTC),
            datetime(2026, 11, 21, 6, tzinfo=UTC),
        ),
        ("0 0 L * *", datetime(2026, 2, 2, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC)),
    ],
)
def test_schedule_regressions(expression: str, after: datetime, expected: datetime) -> None:
    assert CronSchedule.parse(expression).next_fires(after, UTC_ZONE, 1) == [expected]


@pytest.mark.parametrize("bad", ["61 * * * *", "* * * *", "* * * * * * *", "hello", "0 0 31 2 *"])
def test_invalid_expressions_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid cron expression"):
        CronSchedule.parse(bad)
