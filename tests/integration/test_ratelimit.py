"""The GCRA limiter's Lua against the real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis

from shared.ratelimit import RateLimiter, emission_interval
from shared.settings import load_settings
from tests.conftest import REDIS_URL


@pytest.fixture
def limiter(namespace: str) -> Iterator[RateLimiter]:
    client = redis.Redis.from_url(REDIS_URL)
    yield RateLimiter(client, load_settings(redis_url=REDIS_URL, chronos_namespace=namespace))
    client.close()


def test_reservations_are_spaced_one_interval_apart(limiter: RateLimiter) -> None:
    interval = emission_interval(5)
    waits = [limiter.reserve("job", 5, timedelta(seconds=10)).wait for _ in range(6)]
    assert waits[0] < timedelta(milliseconds=50)
    for i, wait in enumerate(waits):
        # Each reservation is one interval after the previous, less the time the calls took.
        assert interval * i - timedelta(milliseconds=100) <= wait <= interval * i
    # Any 1 s at the target holds at most 5 slot times.
    assert 5 * interval > timedelta(seconds=1)


def test_slot_beyond_max_wait_is_not_taken(limiter: RateLimiter) -> None:
    for _ in range(3):
        assert limiter.reserve("job", 2, timedelta(seconds=2)).admitted
    refused = limiter.reserve("job", 2, timedelta(milliseconds=500))
    assert not refused.admitted
    assert refused.wait > timedelta(seconds=0.9)
    # The refusal reserved nothing: the next caller willing to wait gets the same slot.
    again = limiter.reserve("job", 2, timedelta(seconds=2))
    assert again.admitted
    assert abs((again.wait - refused.wait).total_seconds()) < 0.1


def test_jobs_are_limited_independently(limiter: RateLimiter) -> None:
    assert limiter.reserve("a", 1, timedelta(0)).admitted
    assert not limiter.reserve("a", 1, timedelta(0)).admitted
    assert limiter.reserve("b", 1, timedelta(0)).admitted


def test_rejects_non_positive_rate(limiter: RateLimiter) -> None:
    with pytest.raises(ValueError, match="per_second"):
        limiter.reserve("job", 0, timedelta(0))
