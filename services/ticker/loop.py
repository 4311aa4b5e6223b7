"""The ticker loop: a heap of next fire times, slept on until the earliest one.

The loop never polls on a fixed tick. It waits (in `select`) on the job-change connection and a
wake-up pipe, with a timeout that ends at the earliest fire or the next leader-lock renewal,
whichever comes first. Only the replica holding the leader lock fires; the others just keep
trying to take the lock.

Each fire goes through the shared trigger path with key `cron:<job id>:<scheduled time>`, so
a fire created twice (two leaders for a moment, a retried batch) still runs once.
"""

from __future__ import annotations

import heapq
import logging
import os
import select
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from zoneinfo import ZoneInfo

from services.ticker.changes import Changes, JobChanges
from services.ticker.leader import LeaderLock
from services.ticker.misfire import catch_up
from shared import metrics
from shared.cron import CronSchedule, validate_timezone
from shared.db import Database
from shared.errors import UnavailableError
from shared.jobs import Job
from shared.store import jobs as job_store
from shared.store import schedule as schedule_store
from shared.store.jobs import StoredJob
from shared.triggers import Triggers

log = logging.getLogger(__name__)

# A fire later than this is a misfire (see misfire.py); it must outlast a leader takeover.
MIN_MISFIRE_GRACE = timedelta(seconds=5)
# After Postgres or the broker refused a batch, wait this long before trying again.
RETRY_AFTER = timedelta(seconds=1)

Clock = Callable[[], datetime]


def misfire_grace(lock_ttl: timedelta) -> timedelta:
    """Three lock TTLs: longer than the worst takeover (TTL plus one acquire interval)."""
    return max(3 * lock_ttl, MIN_MISFIRE_GRACE)


@dataclass
class _Entry:
    job: Job
    schedule: CronSchedule
    tz: ZoneInfo
    generation: int
    # Every fire up to `after` is done; `next` is the first fire after it, and `upcoming`
    # yields the ones after `next` (one live iterator: building one costs far more than a step).
    after: datetime
    next: datetime = field(init=False)
    upcoming: Iterator[datetime] = field(init=False)

    def __post_init__(self) -> None:
        self.restart(self.after)

    def restart(self, after: datetime) -> None:
        self.after = after
        self.upcoming = self.schedule.iter_after(after, self.tz)
        self.next = next(self.upcoming)


class Waker:
    """A self-pipe: `wake()` from a signal handler or another thread ends the current wait."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)

    def wake(self) -> None:
        try:
            os.write(self.write_fd, b"x")
        except BlockingIOError:
            pass  # Already pending: one byte is as good as many.

    def clear(self) -> None:
        try:
            while os.read(self.read_fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self.write_fd)


class Ticker:
    def __init__(
        self,
        *,
        db: Database,
        triggers: Triggers,
        leader: LeaderLock,
        changes: JobChanges,
        default_timezone: str,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.triggers = triggers
        self.leader = leader
        self.changes = changes
        self.default_tz = validate_timezone(default_timezone)
        self.clock = clock
        self.grace = misfire_grace(leader.ttl)
        self.waker = Waker()
        self._stopping = False
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[datetime, int, str, int]] = []
        self._seq = count()
        self._last: dict[str, datetime] = {}
        self._unsaved: dict[str, datetime] = {}
        self._next_refresh = 0.0
        self._retry_at = 0.0
        self._loaded = False

    def stop(self) -> None:
        """Ask `run` to return; safe from a signal handler or another thread."""
        self._stopping = True
        self.waker.wake()

    def run(self) -> None:
        try:
            while not self._stopping:
                self.step()
        finally:
            self.leader.release()
            self.changes.close()

    def step(self) -> None:
        """One turn: keep the lock, fire what is due, take in job changes, then sleep."""
        if time.monotonic() >= self._next_refresh:
            self._next_refresh = time.monotonic() + self.leader.refresh_interval.total_seconds()
            self.leader.refresh()
        changes = self.changes.drain()
        leading = self.leader.is_leader()
        metrics.LEADER.set(1 if leading else 0)
        if not leading:
            self._forget()
        elif time.monotonic() >= self._retry_at:
            try:
                self._lead(changes)
            except UnavailableError as exc:
                log.warning("ticker cannot reach its stores", extra={"error": str(exc)})
                self._retry_at = time.monotonic() + RETRY_AFTER.total_seconds()
                # The job changes taken in this turn may be lost: read everything next time.
                self._loaded = False
        self._wait(self._timeout())

    def _lead(self, changes: Changes) -> None:
        now = self.clock()
        if not self._loaded or changes.everything:
            self._load_all(now)
        self._fire_due(now)
        if changes.job_ids:
            self._reload(changes.job_ids, now)
        metrics.JOBS.set(len(self._entries))
        self._save_last_fires()

    # Loading jobs

    def _load_all(self, now: datetime) -> None:
        with self.db.transaction() as conn:
            stored = job_store.list_all(conn)
            remembered = schedule_store.last_fires(conn)
        self._entries.clear()
        self._heap.clear()
        for s in stored:
            last = max(
                (t for t in (remembered.get(s.job.id), self._last.get(s.job.id)) if t),
                default=None,
            )
            if last is not None:
                self._last[s.job.id] = last
            # With a remembered last fire the job resumes from it, so the fires it missed
            # reach `_fire_due` and the misfire policy; a job never fired starts from now.
            self._schedule(s, after=last or now)
        self._loaded = True
        log.info("jobs loaded", extra={"scheduled": len(self._entries), "jobs": len(stored)})

    def _reload(self, job_ids: set[str], now: datetime) -> None:
        with self.db.transaction() as conn:
            found = {job_id: job_store.get(conn, job_id) for job_id in job_ids}
        for job_id, stored in found.items():
            entry = self._entries.get(job_id)
            if (
                stored is not None
                and entry is not None
                and stored.active
                and (stored.job.schedule, stored.job.timezone)
                == (entry.job.schedule, entry.job.timezone)
            ):
                # Same schedule: keep the pending fire, take the new definition for snapshots.
                entry.job = stored.job
                continue
            self._entries.pop(job_id, None)
            if stored is not None:
                # Fires that went by while the job was paused or scheduled differently are not
                # misfires: a live change starts the job from now.
                self._schedule(stored, after=now)
            log.info(
                "job rescheduled",
                extra={"job_id": job_id, "scheduled": job_id in self._entries},
            )

    def _schedule(self, stored: StoredJob, after: datetime) -> None:
        schedule = stored.job.cron
        if not stored.active or schedule is None:
            return
        tz = validate_timezone(stored.job.timezone) if stored.job.timezone else self.default_tz
        entry = _Entry(stored.job, schedule, tz, next(self._seq), after)
        self._entries[stored.job.id] = entry
        self._push(entry)

    def _push(self, entry: _Entry) -> None:
        heapq.heappush(self._heap, (entry.next, next(self._seq), entry.job.id, entry.generation))

    def _forget(self) -> None:
        """A follower keeps nothing: on taking the lead it reads jobs and last fires afresh."""
        if self._loaded:
            self._entries.clear()
            self._heap.clear()
            self._last.clear()
            self._unsaved.clear()
            self._loaded = False

    # Firing

    def _fire_due(self, now: datetime) -> None:
        due: list[_Entry] = []
        while self._heap and self._heap[0][0] <= now:
            _, _, job_id, generation = heapq.heappop(self._heap)
            entry = self._entries.get(job_id)
            if entry is not None and entry.generation == generation:
                due.append(entry)
        if not due:
            return
        batch: list[tuple[Job, datetime]] = []
        try:
            for entry in due:
                batch.extend((entry.job, at) for at in self._advance(entry, now))
            created = self.triggers.fire_cron(batch)
        except UnavailableError:
            # Nothing of this turn happened: back to where every due entry was.
            for entry in due:
                entry.restart(entry.after)
                self._push(entry)
            raise
        for entry in due:
            entry.after = now
            self._push(entry)
        fired_at = self.clock()
        for job, at in batch:
            self._last[job.id] = self._unsaved[job.id] = at
            metrics.SCHEDULER_LAG.observe(max(0.0, (fired_at - at).total_seconds()))
        log.debug("fired", extra={"fires": len(batch), "created": len(created)})

    def _advance(self, entry: _Entry, now: datetime) -> list[datetime]:
        """The fires of a due entry, moving it on to its first fire after `now`. `after` stays
        until the fires are committed, so a failed turn can go back to it."""
        if entry.next >= now - self.grace:
            # On time, or late by less than the grace: every fire up to now.
            fires = [entry.next]
            entry.next = next(entry.upcoming)
            while entry.next <= now:
                fires.append(entry.next)
                entry.next = next(entry.upcoming)
            return fires
        fires = catch_up(
            entry.schedule,
            entry.tz,
            last=entry.after,
            now=now,
            policy=entry.job.misfire_policy,
            starting_deadline=entry.job.starting_deadline,
            grace=self.grace,
        )
        log.warning(
            "missed fires",
            extra={
                "job_id": entry.job.id,
                "since": entry.next.isoformat(),
                "policy": entry.job.misfire_policy,
                "fires": len(fires),
            },
        )
        after = entry.after
        entry.restart(now)
        entry.after = after
        return fires

    def _save_last_fires(self) -> None:
        if not self._unsaved:
            return
        with self.db.transaction() as conn:
            schedule_store.record_fires(conn, self._unsaved)
        self._unsaved.clear()

    # Sleeping

    def _timeout(self) -> float:
        wake_at = [self._next_refresh - time.monotonic()]
        reconnect = self.changes.seconds_to_reconnect()
        if reconnect is not None:
            wake_at.append(reconnect)
        if self.leader.is_leader():
            if time.monotonic() < self._retry_at:
                wake_at.append(self._retry_at - time.monotonic())
            else:
                self._drop_stale_heads()
                if self._heap:
                    wake_at.append((self._heap[0][0] - self.clock()).total_seconds())
                elif not self._loaded:
                    wake_at.append(0.0)
        return max(0.0, min(wake_at))

    def _drop_stale_heads(self) -> None:
        while self._heap:
            _, _, job_id, generation = self._heap[0]
            entry = self._entries.get(job_id)
            if entry is not None and entry.generation == generation:
                return
            heapq.heappop(self._heap)

    def _wait(self, timeout: float) -> None:
        fds = [self.waker.read_fd]
        listen_fd = self.changes.fileno()
        if listen_fd is not None:
            fds.append(listen_fd)
        if timeout > 0:
            select.select(fds, [], [], timeout)
        self.waker.clear()
