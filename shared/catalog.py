"""Job management operations shared by the CLI and the management API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shared.cron import validate_timezone
from shared.db import Database
from shared.errors import ConflictError, NotFoundError
from shared.jobs import Job
from shared.store import jobs as job_store
from shared.store.jobs import StoredJob


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)

    def summary(self) -> str:
        if not self.changed:
            return f"no changes ({len(self.unchanged)} jobs unchanged)"
        parts = [
            f"{len(ids)} {label}"
            for label, ids in (
                ("created", self.created),
                ("updated", self.updated),
                ("deleted", self.deleted),
                ("unchanged", self.unchanged),
            )
            if ids
        ]
        return ", ".join(parts)


def apply(db: Database, jobs: list[Job], *, prune: bool = False) -> ApplyReport:
    """Upsert every job in one transaction; with `prune`, delete jobs not listed."""
    report = ApplyReport()
    with db.transaction() as conn:
        for job in jobs:
            getattr(report, job_store.upsert(conn, job)).append(job.id)
        if prune:
            report.deleted = job_store.delete_except(conn, [job.id for job in jobs])
    return report


def list_jobs(db: Database) -> list[StoredJob]:
    with db.transaction() as conn:
        return job_store.list_all(conn)


def get_job(db: Database, job_id: str) -> StoredJob:
    with db.transaction() as conn:
        stored = job_store.get(conn, job_id)
    if stored is None:
        raise NotFoundError("job", job_id)
    return stored


def delete_job(db: Database, job_id: str) -> None:
    with db.transaction() as conn:
        if not job_store.delete(conn, job_id):
            raise NotFoundError("job", job_id)


def set_paused(db: Database, job_id: str, paused: bool) -> StoredJob:
    with db.transaction() as conn:
        if not job_store.set_paused(conn, job_id, paused):
            raise NotFoundError("job", job_id)
        stored = job_store.get(conn, job_id)
    assert stored is not None
    return stored


def create_job(db: Database, job: Job) -> StoredJob:
    """Add one job; ConflictError when its id is taken."""
    with db.transaction() as conn:
        if not job_store.insert(conn, job):
            raise ConflictError(f"job {job.id!r} already exists; replace it instead")
        stored = job_store.get(conn, job.id)
    assert stored is not None
    return stored


def put_job(db: Database, job: Job) -> tuple[StoredJob, bool]:
    """Create or replace one job (keeping its paused state); True when it was created."""
    with db.transaction() as conn:
        created = job_store.upsert(conn, job) == "created"
        stored = job_store.get(conn, job.id)
    assert stored is not None
    return stored, created


@dataclass(frozen=True)
class NextFires:
    timezone: str
    fires: list[datetime]


def next_fires(
    db: Database, job_id: str, count: int, *, default_timezone: str, now: datetime
) -> NextFires:
    """The job's next `count` fire times after `now` (aware UTC), and the zone they follow.

    ConflictError when the job has no schedule.
    """
    job = get_job(db, job_id).job
    schedule = job.cron
    if schedule is None:
        raise ConflictError(f"job {job_id!r} has no schedule")
    zone = job.timezone or default_timezone
    return NextFires(zone, schedule.next_fires(now, validate_timezone(zone), count))
