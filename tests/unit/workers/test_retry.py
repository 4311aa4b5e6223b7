from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.workers.retry import JITTER, backoff, parse_retry_after, should_retry
from shared.jobs import RetryPolicy

POLICY = RetryPolicy(max_attempts=5, initial_interval="1s", max_interval="10s", multiplier=3.0)


def no_jitter() -> float:
    return 0.0


def full_jitter() -> float:
    return 1.0


def test_backoff_grows_by_multiplier_and_stops_at_the_cap() -> None:
    delays = [backoff(POLICY, n, rand=no_jitter) for n in (1, 2, 3, 4)]
    assert delays == [
        timedelta(seconds=1),
        timedelta(seconds=3),
        timedelta(seconds=9),
        timedelta(seconds=10),
    ]


def test_jitter_only_shortens() -> None:
    assert backoff(POLICY, 2, rand=full_jitter) == timedelta(seconds=3) * (1 - JITTER)


def test_huge_exponent_is_capped_not_an_error() -> None:
    policy = RetryPolicy(max_attempts=100, multiplier=100.0)
    assert backoff(policy, 99, rand=no_jitter) == policy.max_interval


def test_retry_after_is_honoured_when_longer_and_capped() -> None:
    assert backoff(POLICY, 1, timedelta(seconds=4), rand=no_jitter) == timedelta(seconds=4)
    assert backoff(POLICY, 1, timedelta(hours=1), rand=no_jitter) == timedelta(seconds=10)
    assert backoff(POLICY, 3, timedelta(seconds=1), rand=no_jitter) == timedelta(seconds=9)


def test_should_retry_counts_attempts() -> None:
    assert should_retry(POLICY, 4)
    assert not should_retry(POLICY, 5)


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 22, 9, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == timedelta(seconds=120)
    assert parse_retry_after("Sun, 22 Nov 2026 09:00:30 GMT", now) == timedelta(seconds=30)
    assert parse_retry_after("Sun, 22 Nov 2026 08:00:00 GMT", now) == timedelta(0)
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
