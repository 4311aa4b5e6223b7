"""The Redis leader lock that lets one ticker replica fire at a time.

redis-py's `Lock` does the token work: acquire is `SET NX PX` with a unique token, renewal
(`reacquire`) and release are Lua scripts that act only while the key still holds our token,
so a process that lost the lock can never extend or delete its successor's.

The lock only keeps replicas from doing the same work twice; the unique execution key is what
makes each fire happen once, even while a paused old leader and its successor overlap.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from datetime import timedelta

import redis
from redis.exceptions import LockError

log = logging.getLogger(__name__)


class LeaderLock:
    def __init__(self, client: redis.Redis, key: str, ttl: timedelta) -> None:
        self.key = key
        self.ttl = ttl
        # Readable owner in the key's value: operators (and tests) can see who leads.
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        self._lock = client.lock(key, timeout=ttl.total_seconds(), thread_local=False)
        self._held = False
        self._valid_until = 0.0

    @property
    def refresh_interval(self) -> timedelta:
        """How often to call `refresh`: three renewals fit in one TTL."""
        return self.ttl / 3

    def is_leader(self) -> bool:
        """Whether this process may act as leader now: it holds the lock by its last successful
        renewal, counted from before that renewal was sent."""
        return self._held and time.monotonic() < self._valid_until

    def refresh(self) -> bool:
        """Renew the lock if held, try to take it otherwise; return `is_leader()`."""
        started = time.monotonic()
        was_leader = self.is_leader()
        try:
            if self._held:
                self._lock.reacquire()
            else:
                self._held = self._lock.acquire(blocking=False, token=self.token)
            if self._held:
                self._valid_until = started + self.ttl.total_seconds()
        except LockError:
            self._held = False
        except redis.RedisError as exc:
            # Unknown outcome: keep acting on the last renewal until it runs out.
            log.warning("leader lock unreachable", extra={"key": self.key, "error": str(exc)})
        leader = self.is_leader()
        if leader != was_leader:
            log.info(
                "leadership acquired" if leader else "leadership lost",
                extra={"key": self.key, "token": self.token},
            )
        return leader

    def release(self) -> None:
        """Give the lock up (only if it is still ours), so a successor need not wait the TTL."""
        if not self._held:
            return
        self._held = False
        try:
            self._lock.release()
            log.info("leadership released", extra={"key": self.key, "token": self.token})
        except (LockError, redis.RedisError):
            pass
