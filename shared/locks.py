"""Per-job concurrency slots in Redis, shared by every worker process and host.

A job's slots are one sorted set (`<namespace>:lock:<job id>`): each member is a holder's token,
its score the moment (Redis clock, ms) the holding lapses unless renewed. `limit` 1 is the
mutual-exclusion lock of `forbid` and `replace`; N is `max_concurrency`. Every operation is one
Lua script, so "drop lapsed holders, count, add" cannot interleave with another process's.

A holder renews its lease from a background thread while its attempt runs; a worker that dies
mid-attempt stops renewing, and its slot frees itself after at most the TTL. Release removes only
the holder's own member, so a holder that lost its lease can never free its successor's slot.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import redis

from shared.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_TTL = timedelta(seconds=10)

# Shared prelude: the Redis clock in ms (every process agrees on it) and lapsed holders dropped.
_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
"""

# The key itself expires with its last holder, so abandoned jobs leave nothing behind.
_EXPIRE_WITH_LAST = """
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[1], last[2]) end
"""

# KEYS[1] slots; ARGV: token, ttl ms, limit. Returns 1 when the token holds a slot.
ACQUIRE_LUA = (
    _PRELUDE
    + """
local ttl = tonumber(ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1])
    or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
"""
    + _EXPIRE_WITH_LAST
    + """
  return 1
end
return 0
"""
)

# KEYS[1] slots; ARGV: token, ttl ms. Returns 1 when renewed, 0 when the lease was lost.
RENEW_LUA = (
    _PRELUDE
    + """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
"""
    + _EXPIRE_WITH_LAST
    + """
return 1
"""
)

# KEYS[1] slots. Returns the live holders' tokens.
HOLDERS_LUA = (
    _PRELUDE
    + """
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
)


def holder_execution(token: str) -> str:
    """The execution id a token was issued to (tokens are `<execution id>/<random>`)."""
    return token.split("/", 1)[0]


@dataclass
class Lease:
    """One held slot. `lost` is set when a renewal finds the slot gone (expired or evicted)."""

    slots: JobSlots
    job_id: str
    token: str
    lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _renewer: threading.Thread | None = None

    def start_renewing(self) -> None:
        self._renewer = threading.Thread(
            target=self._renew_loop, name=f"lease-{self.job_id}", daemon=True
        )
        self._renewer.start()

    def _renew_loop(self) -> None:
        interval = self.slots.ttl.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                if not self.slots.renew(self.job_id, self.token):
                    log.warning(
                        "job lease lost", extra={"job_id": self.job_id, "token": self.token}
                    )
                    self.lost.set()
                    return
            except redis.RedisError as exc:
                # The lease lasts a full TTL; two more renewals may still get through.
                log.warning(
                    "job lease renewal failed", extra={"job_id": self.job_id, "error": str(exc)}
                )

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join()
        try:
            self.slots.release(self.job_id, self.token)
        except redis.RedisError as exc:
            # The slot frees itself when the TTL runs out.
            log.warning(
                "job lease release failed", extra={"job_id": self.job_id, "error": str(exc)}
            )


class JobSlots:
    """Acquire, renew, inspect and release the concurrency slots of jobs."""

    def __init__(
        self, client: redis.Redis, settings: Settings, ttl: timedelta = DEFAULT_TTL
    ) -> None:
        if ttl < timedelta(milliseconds=300):
            raise ValueError(f"lock ttl must be at least 300ms, got {ttl}")
        self.client = client
        self.settings = settings
        self.ttl = ttl
        self._acquire = client.register_script(ACQUIRE_LUA)
        self._renew = client.register_script(RENEW_LUA)
        self._holders = client.register_script(HOLDERS_LUA)

    def _slots_key(self, job_id: str) -> str:
        return self.settings.key("lock", job_id)

    def _ttl_ms(self) -> int:
        return int(self.ttl.total_seconds() * 1000)

    @staticmethod
    def new_token(execution_id: object) -> str:
        return f"{execution_id}/{uuid.uuid4().hex}"

    def try_acquire(self, job_id: str, token: str, limit: int = 1) -> bool:
        if limit < 1:
            raise ValueError(f"slot limit must be at least 1, got {limit}")
        keys = [self._slots_key(job_id)]
        return bool(self._acquire(keys=keys, args=[token, self._ttl_ms(), limit]))

    def renew(self, job_id: str, token: str) -> bool:
        return bool(self._renew(keys=[self._slots_key(job_id)], args=[token, self._ttl_ms()]))

    def release(self, job_id: str, token: str) -> None:
        """Free the slot held under `token` (and only that one). `replace` also uses this to
        evict a cancelled holder that has not let go in time."""
        self.client.zrem(self._slots_key(job_id), token)

    def holders(self, job_id: str) -> list[str]:
        """Tokens of the live holders, soonest to lapse first."""
        tokens = self._holders(keys=[self._slots_key(job_id)])
        return [t.decode() if isinstance(t, bytes) else str(t) for t in tokens]

    def lease(self, job_id: str, token: str, limit: int = 1) -> Lease | None:
        """Take a slot and keep it renewed until `Lease.release()`; None when all are taken."""
        if not self.try_acquire(job_id, token, limit):
            return None
        lease = Lease(self, job_id, token)
        lease.start_renewing()
        return lease

    @contextmanager
    def holding(self, job_id: str, token: str, limit: int = 1) -> Iterator[Lease | None]:
        lease = self.lease(job_id, token, limit)
        try:
            yield lease
        finally:
            if lease is not None:
                lease.release()
