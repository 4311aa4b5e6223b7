"""The one trigger path every front end uses: insert the execution, commit, then enqueue.

Cron fires, webhooks, manual triggers and replays all come through `Triggers.fire`. The UNIQUE
idempotency key makes a repeated trigger harmless: only the insert that wins goes on to enqueue,
and a loser learns the id of the execution that won.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID, uuid4

from shared.broker import Enqueuer
from shared.db import Database
from shared.errors import UnavailableError
from shared.jobs import Job
from shared.store import executions

log = logging.getLogger(__name__)

TriggerKind = Literal["cron", "webhook", "manual", "replay"]


@dataclass(frozen=True)
class Triggered:
    execution_id: UUID
    created: bool


def cron_key(job_id: str, scheduled_at: datetime) -> str:
    stamp = scheduled_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"cron:{job_id}:{stamp}"


def webhook_key(job_id: str, delivery_id: str) -> str:
    return f"webhook:{job_id}:{delivery_id}"


class Triggers:
    def __init__(self, db: Database, enqueuer: Enqueuer) -> None:
        self.db = db
        self.enqueuer = enqueuer

    def fire(
        self,
        job: Job,
        kind: TriggerKind,
        *,
        payload: Any = None,
        scheduled_at: datetime | None = None,
        idempotency_key: str | None = None,
        replay_of: UUID | None = None,
        snapshot: dict[str, Any] | None = None,
        message_options: dict[str, Any] | None = None,
    ) -> Triggered:
        """Create and enqueue one execution; raise UnavailableError if it cannot be accepted.

        `payload` None means the job's own payload. `scheduled_at` defaults to now (the trigger
        time of manual and webhook runs).
        """
        now = datetime.now(UTC)
        new = executions.NewExecution(
            id=uuid4(),
            job_id=job.id,
            trigger=kind,
            scheduled_at=scheduled_at or now,
            job_snapshot=snapshot if snapshot is not None else job.spec(),
            payload=job.payload if payload is None else payload,
            idempotency_key=idempotency_key,
            replay_of=replay_of,
        )
        with self.db.transaction() as conn:
            inserted = executions.insert(conn, new)
            if inserted is None:
                assert idempotency_key is not None
                existing = executions.id_for_key(conn, idempotency_key)
        if inserted is None:
            if existing is None:
                # The winner's row vanished between our two statements (retention); rare
                # enough that asking the caller to retry is the honest answer.
                raise UnavailableError("concurrent trigger with the same key; retry")
            return Triggered(existing, created=False)
        try:
            self.enqueuer.enqueue(new.id, options=message_options)
        except UnavailableError:
            # A keyed execution stays `pending` for the repair loop: a concurrent copy of the
            # same delivery may already have answered with its id, and the caller's retry with
            # that key finds it rather than creating a second one. Without a key the retry
            # would make a new execution, so this one must go.
            if idempotency_key is None:
                self._discard(new.id)
            raise
        try:
            with self.db.transaction() as conn:
                executions.mark_queued(conn, new.id, datetime.now(UTC))
        except UnavailableError:
            # Row and message are both durable, so the execution is accepted; the worker
            # records enqueued_at itself when it finds the row still pending.
            log.warning("could not mark execution queued", extra={"execution_id": str(new.id)})
        return Triggered(new.id, created=True)

    def fire_cron(self, fires: Sequence[tuple[Job, datetime]]) -> list[UUID]:
        """Create and enqueue the cron executions of many (job, scheduled time) pairs at once.

        The same contract as `fire` with key `cron_key(job.id, scheduled_at)`, in one insert
        and one update for the whole batch; returns the ids of the executions it created (a
        pair whose key exists already creates nothing). If the broker fails, the executions not
        yet enqueued are discarded and UnavailableError is raised; firing again is safe.
        """
        news = [
            executions.NewExecution(
                id=uuid4(),
                job_id=job.id,
                trigger="cron",
                scheduled_at=at,
                job_snapshot=job.spec(),
                payload=job.payload,
                idempotency_key=cron_key(job.id, at),
            )
            for job, at in fires
        ]
        if not news:
            return []
        with self.db.transaction() as conn:
            inserted = executions.insert_many(conn, news)
        created = [new for new in news if new.id in inserted]
        queued: list[tuple[UUID, datetime]] = []
        try:
            for new in created:
                self.enqueuer.enqueue(new.id)
                queued.append((new.id, datetime.now(UTC)))
        except UnavailableError:
            for new in created[len(queued) :]:
                self._discard(new.id)
            raise
        finally:
            self._mark_queued(queued)
        return [new.id for new in created]

    def _mark_queued(self, queued: list[tuple[UUID, datetime]]) -> None:
        if not queued:
            return
        try:
            with self.db.transaction() as conn:
                executions.mark_queued_many(conn, queued)
        except UnavailableError:
            log.warning("could not mark executions queued", extra={"count": len(queued)})

    def _discard(self, execution_id: UUID) -> None:
        try:
            with self.db.transaction() as conn:
                executions.discard_pending(conn, execution_id)
        except UnavailableError:
            # The row stays pending and the repair loop will enqueue it later: the execution
            # is not lost, it only runs late.
            log.warning(
                "could not discard unenqueued execution",
                extra={"execution_id": str(execution_id)},
            )
