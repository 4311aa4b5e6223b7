"""Per-job request rate limit shared by every worker process, through Redis.

GCRA (the generic cell rate algorithm): one key per job holds the theoretical arrival time (TAT)
of the next request, in microseconds of the Redis clock. A reservation takes the slot at
`max(TAT, now)` and pushes TAT one emission interval further, so requests leave evenly spaced
rather than in bursts at each second's edge. A slot further away than `max_wait` is not taken:
the caller defers the execution instead of holding a thread, and asks again later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import redis

from shared.settings import Settings

# Admissions are spaced this much wider than 1/N: a request reaches the target a few ms after
# its slot (thread wake-up, connection pool), and that jitter must not squeeze N+1 requests into
# one second at the target.
SPACING_MARGIN = 0.05

# KEYS[1] the job's TAT; ARGV: emission interval us, max wait us.
# Returns {admitted (0|1), wait us}. Numbers are formatted with %.0f on the way into Redis
# because Lua's default conversion keeps only 14 significant digits.
RESERVE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - now
if wait > tonumber(ARGV[2]) then return {0, string.format('%.0f', wait)} end
local next_tat = tat + tonumber(ARGV[1])
local ttl_ms = math.ceil((next_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl_ms)
return {1, string.format('%.0f', wait)}
"""


@dataclass(frozen=True)
class Reservation:
    """`admitted`: the request may be sent after `wait`. Otherwise the next slot is `wait` away
    and nothing was reserved."""

    admitted: bool
    wait: timedelta


def emission_interval(per_second: float) -> timedelta:
    return timedelta(seconds=(1 + SPACING_MARGIN) / per_second)


class RateLimiter:
    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.settings = settings
        self._reserve = client.register_script(RESERVE_LUA)

    def reserve(self, job_id: str, per_second: float, max_wait: timedelta) -> Reservation:
        if per_second <= 0:
            raise ValueError(f"per_second must be greater than zero, got {per_second}")
        interval_us = round(emission_interval(per_second) / timedelta(microseconds=1))
        max_wait_us = max(0, round(max_wait / timedelta(microseconds=1)))
        admitted, wait_us = self._reserve(
            keys=[self.settings.key("rate", job_id)], args=[max(1, interval_us), max_wait_us]
        )
        return Reservation(bool(admitted), timedelta(microseconds=int(wait_us)))
