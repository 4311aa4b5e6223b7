"""The job's concurrency policy and rate limit, applied before each attempt is dispatched.

The policy is enforced per attempt with the job's Redis slots (`shared.locks`), so it holds
across every worker process and host:

- `allow`: no slot, unless `max_concurrency: N`; then at most N attempts run at once and the
  others are deferred (re-enqueued shortly), not skipped.
- `forbid`: one slot; an execution that finds it taken ends `skipped`, naming the holder.
- `replace`: one slot; the holder's execution is cancelled (its in-flight request aborted), and
  the new attempt takes the slot once the holder lets go, or evicts it after `replace_wait`
  (a holder that died still has its lease for up to one TTL).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import redis

from shared import control
from shared.db import Database
from shared.errors import ConflictError, NotFoundError
from shared.jobs import Job
from shared.locks import JobSlots, Lease, holder_execution
from shared.ratelimit import RateLimiter
from shared.settings import Settings

log = logging.getLogger(__name__)

# How long `replace` waits for the cancelled holder to release before evicting it.
REPLACE_WAIT = timedelta(seconds=3)
REPLACE_POLL = timedelta(milliseconds=50)
# A deferred execution comes back after about this long (plus jitter) to try for a slot again.
SLOT_RETRY_DELAY = timedelta(seconds=1)
# A rate-limit slot further away than this is not waited for in a worker thread.
MAX_RATE_WAIT = timedelta(seconds=2)
# `forbid` looks at the holders again when the slot was freed between two calls.
_FORBID_TRIES = 3


@dataclass(frozen=True)
class Admit:
    """Dispatch now; release `lease` (if any) when the attempt ends."""

    lease: Lease | None = None

    def release(self) -> None:
        if self.lease is not None:
            self.lease.release()


@dataclass(frozen=True)
class Skip:
    """End the execution `skipped` with this reason."""

    reason: str


@dataclass(frozen=True)
class Defer:
    """Put the execution back on the queue to try again after `delay`."""

    delay: timedelta
    reason: str


Decision = Admit | Skip | Defer
# Cancels an execution with a reason; errors for executions that already ended are swallowed.
CancelFn = Callable[[UUID, str], object]


def _jittered(delay: timedelta) -> timedelta:
    return delay * (1 + random.random())


class ConcurrencyGate:
    def __init__(
        self,
        slots: JobSlots,
        limiter: RateLimiter,
        cancel: CancelFn,
        replace_wait: timedelta = REPLACE_WAIT,
    ) -> None:
        self.slots = slots
        self.limiter = limiter
        self.cancel = cancel
        self.replace_wait = replace_wait

    def enter(self, execution_id: UUID, job: Job, cancelled: threading.Event) -> Decision:
        """Decide whether this attempt may be dispatched now. On Admit the attempt holds its
        slot and its rate-limit turn (this call has already slept until that turn)."""
        decision = self._policy(execution_id, job)
        if not isinstance(decision, Admit) or job.rate_limit is None:
            return decision
        deferred = self._pace(job, job.rate_limit.per_second, cancelled)
        if deferred is not None:
            decision.release()
            return deferred
        return decision

    def _policy(self, execution_id: UUID, job: Job) -> Decision:
        token = JobSlots.new_token(execution_id)
        if job.concurrency_policy == "allow":
            if job.max_concurrency is None:
                return Admit()
            lease = self.slots.lease(job.id, token, limit=job.max_concurrency)
            if lease is None:
                return Defer(
                    _jittered(SLOT_RETRY_DELAY),
                    f"all {job.max_concurrency} slots of job {job.id} are taken",
                )
            return Admit(lease)
        if job.concurrency_policy == "forbid":
            return self._forbid(job, token)
        return self._replace(execution_id, job, token)

    def _forbid(self, job: Job, token: str) -> Decision:
        for _ in range(_FORBID_TRIES):
            lease = self.slots.lease(job.id, token)
            if lease is not None:
                return Admit(lease)
            holders = self.slots.holders(job.id)
            if holders:
                running = ", ".join(holder_execution(t) for t in holders)
                return Skip(
                    f"job {job.id} is still running execution {running} (concurrency_policy forbid)"
                )
        return Defer(_jittered(SLOT_RETRY_DELAY), f"slot of job {job.id} is contended")

    def _replace(self, execution_id: UUID, job: Job, token: str) -> Decision:
        lease = self.slots.lease(job.id, token)
        if lease is not None:
            return Admit(lease)
        holders = self.slots.holders(job.id)
        for holder in holders:
            log.info(
                "replacing running execution",
                extra={"job_id": job.id, "execution_id": str(execution_id), "holder": holder},
            )
            self.cancel(
                UUID(holder_execution(holder)),
                f"replaced by execution {execution_id} (concurrency_policy replace)",
            )
        deadline = time.monotonic() + self.replace_wait.total_seconds()
        while time.monotonic() < deadline:
            time.sleep(REPLACE_POLL.total_seconds())
            lease = self.slots.lease(job.id, token)
            if lease is not None:
                return Admit(lease)
        for holder in holders:
            log.warning("evicting unresponsive holder", extra={"job_id": job.id, "holder": holder})
            self.slots.release(job.id, holder)
        lease = self.slots.lease(job.id, token)
        if lease is None:
            # A third execution took the slot in between; it will be replaced in turn.
            return Defer(_jittered(SLOT_RETRY_DELAY), f"slot of job {job.id} is contended")
        return Admit(lease)

    def _pace(self, job: Job, per_second: float, cancelled: threading.Event) -> Defer | None:
        reservation = self.limiter.reserve(job.id, per_second, MAX_RATE_WAIT)
        if reservation.admitted:
            # Interruptible: a cancel during the wait ends it at once.
            cancelled.wait(reservation.wait.total_seconds())
            return None
        # Come back when the next free turn is about MAX_RATE_WAIT / 2 away, spread out so that
        # deferred executions do not all ask again at the same moment.
        delay = reservation.wait - MAX_RATE_WAIT / 2
        return Defer(
            delay + reservation.wait * random.random(),
            f"rate limit of job {job.id} ({per_second:g}/s)",
        )


def build_gate(settings: Settings, db: Database, client: redis.Redis) -> ConcurrencyGate:
    """The gate of one worker process, over its Redis client and Postgres pool."""

    def cancel_holder(execution_id: UUID, reason: str) -> None:
        try:
            control.cancel(db, client, settings, execution_id, reason)
        except (NotFoundError, ConflictError):
            pass  # it ended on its own meanwhile; its slot is being released

    return ConcurrencyGate(JobSlots(client, settings), RateLimiter(client, settings), cancel_holder)
