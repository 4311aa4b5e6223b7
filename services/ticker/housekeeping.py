"""Periodic upkeep the leader does beside firing, in its own thread so it never delays a fire.

- Repair: an execution committed but never enqueued (a crash between the two) stays `pending`;
  after `PENDING_REPAIR_AFTER` it is enqueued again. Messages are delivered at least once
  anyway, so a rare second message for a slow first one does no harm.
- Retention: executions older than `RUN_RETENTION_DAYS` are deleted, with their attempts.
- Dedupe: webhook delivery ids older than `DEDUPE_WINDOW_HOURS` are forgotten (the key is set to
  NULL, the execution stays), so a redelivery after the window runs again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.broker import Enqueuer
from shared.db import Database
from shared.errors import UnavailableError
from shared.store import executions
from shared.store import housekeeping as store

log = logging.getLogger(__name__)

PENDING_REPAIR_AFTER = timedelta(seconds=10)
REPAIR_EVERY = timedelta(seconds=5)
CLEANUP_EVERY = timedelta(minutes=1)
BATCH = 1000


@dataclass(frozen=True)
class Report:
    requeued: int = 0
    deleted: int = 0
    keys_expired: int = 0


class Housekeeper:
    def __init__(
        self,
        db: Database,
        enqueuer: Enqueuer,
        *,
        retention: timedelta,
        dedupe_window: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.enqueuer = enqueuer
        self.retention = retention
        self.dedupe_window = dedupe_window
        self.clock = clock

    def repair(self) -> int:
        """Enqueue executions left pending; return how many."""
        requeued = 0
        while True:
            with self.db.transaction() as conn:
                ids = store.stale_pending(conn, self.clock() - PENDING_REPAIR_AFTER, BATCH)
            queued = []
            for execution_id in ids:
                self.enqueuer.enqueue(execution_id)
                queued.append((execution_id, self.clock()))
            if queued:
                with self.db.transaction() as conn:
                    executions.mark_queued_many(conn, queued)
                log.warning("pending executions re-enqueued", extra={"count": len(queued)})
            requeued += len(queued)
            if len(ids) < BATCH:
                return requeued

    def clean(self) -> Report:
        """Apply retention and expire dedupe keys, one bounded batch per transaction."""
        deleted = self._repeat(store.delete_executions_before, self.clock() - self.retention)
        expired = self._repeat(store.expire_webhook_keys, self.clock() - self.dedupe_window)
        if deleted or expired:
            log.info("housekeeping", extra={"deleted": deleted, "keys_expired": expired})
        return Report(deleted=deleted, keys_expired=expired)

    def run_once(self) -> Report:
        requeued = self.repair()
        cleaned = self.clean()
        return Report(requeued, cleaned.deleted, cleaned.keys_expired)

    def _repeat(self, operation: Callable[..., int], before: datetime) -> int:
        total = 0
        while True:
            with self.db.transaction() as conn:
                done = operation(conn, before, BATCH)
            total += done
            if done < BATCH:
                return total

    def run(self, is_leader: Callable[[], bool], stop: threading.Event) -> None:
        """Repair every REPAIR_EVERY and clean every CLEANUP_EVERY while this process leads."""
        next_clean = 0.0
        while not stop.wait(REPAIR_EVERY.total_seconds()):
            if not is_leader():
                continue
            try:
                self.repair()
                now = self.clock().timestamp()
                if now >= next_clean:
                    self.clean()
                    next_clean = now + CLEANUP_EVERY.total_seconds()
            except UnavailableError as exc:
                log.warning("housekeeping failed", extra={"error": str(exc)})
