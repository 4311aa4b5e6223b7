"""Retry timing: pure functions of the job's retry policy, the attempt number and the target's hint.

Delay after attempt n = initial_interval * multiplier^(n-1), capped at max_interval, minus up to
`JITTER` of itself so that executions failing together do not retry in lockstep. A `Retry-After`
from the target is honoured when it asks for longer, but never beyond max_interval: the job's
author bounds how long an execution may sit between attempts.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from shared.jobs import RetryPolicy

# Fraction of the computed delay that jitter may take away (never adds: the cap stays a cap).
JITTER = 0.2


def should_retry(policy: RetryPolicy, attempt: int) -> bool:
    """Whether attempt `attempt` (1-based), having failed retryably, gets a successor."""
    return attempt < policy.max_attempts


def backoff(
    policy: RetryPolicy,
    attempt: int,
    retry_after: timedelta | None = None,
    rand: Callable[[], float] = random.random,
) -> timedelta:
    """How long to wait after failed attempt `attempt` before the next one."""
    exponent = max(0, attempt - 1)
    try:
        base = policy.initial_interval * (policy.multiplier**exponent)
    except OverflowError:
        base = policy.max_interval
    delay = min(base, policy.max_interval) * (1 - JITTER * rand())
    if retry_after is not None and retry_after > delay:
        delay = min(retry_after, policy.max_interval)
    return delay


def parse_retry_after(value: str | None, now: datetime | None = None) -> timedelta | None:
    """A `Retry-After` header: delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return timedelta(seconds=int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(timedelta(0), when - (now or datetime.now(UTC)))
