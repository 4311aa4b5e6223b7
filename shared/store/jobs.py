"""Named operations on the `jobs` table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from shared.db import Connection
from shared.jobs import Job


@dataclass(frozen=True)
class StoredJob:
    job: Job
    paused: bool
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def active(self) -> bool:
        """Fires on schedule and accepts webhooks."""
        return self.job.enabled and not self.paused

    def to_json(self) -> dict[str, Any]:
        return {
            **self.job.spec(),
            "paused": self.paused,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


_COLUMNS = "id, spec, paused, version, created_at, updated_at"


def _stored(row: dict[str, Any]) -> StoredJob:
    return StoredJob(
        job=Job.model_validate(row["spec"]),
        paused=row["paused"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def list_all(conn: Connection) -> list[StoredJob]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM jobs ORDER BY id").fetchall()
    return [_stored(row) for row in rows]


def get(conn: Connection, job_id: str, *, for_update: bool = False) -> StoredJob | None:
    lock = " FOR UPDATE" if for_update else ""
    row = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = %s{lock}", (job_id,)).fetchone()
    return _stored(row) if row else None


def upsert(conn: Connection, job: Job) -> str:
    """Insert or replace a definition; return "created", "updated" or "unchanged"."""
    spec = job.spec()
    row = conn.execute(
        """
        INSERT INTO jobs (id, spec, schedule, enabled)
        VALUES (%(id)s, %(spec)s, %(schedule)s, %(enabled)s)
        ON CONFLICT (id) DO UPDATE
            SET spec = EXCLUDED.spec, schedule = EXCLUDED.schedule, enabled = EXCLUDED.enabled,
                version = jobs.version + 1, updated_at = now()
            WHERE jobs.spec IS DISTINCT FROM EXCLUDED.spec
        RETURNING (xmax = 0) AS inserted
        """,
        {"id": job.id, "spec": Jsonb(spec), "schedule": job.schedule, "enabled": job.enabled},
    ).fetchone()
    if row is None:
        return "unchanged"
    return "created" if row["inserted"] else "updated"


def insert(conn: Connection, job: Job) -> bool:
    """Insert a new definition; False when a job with that id exists already."""
    row = conn.execute(
        """
        INSERT INTO jobs (id, spec, schedule, enabled)
        VALUES (%(id)s, %(spec)s, %(schedule)s, %(enabled)s)
        ON CONFLICT (id) DO NOTHING
        RETURNING id
        """,
        {"id": job.id, "spec": Jsonb(job.spec()), "schedule": job.schedule, "enabled": job.enabled},
    ).fetchone()
    return row is not None


def delete(conn: Connection, job_id: str) -> bool:
    return conn.execute("DELETE FROM jobs WHERE id = %s", (job_id,)).rowcount > 0


def delete_except(conn: Connection, keep: list[str]) -> list[str]:
    rows = conn.execute(
        "DELETE FROM jobs WHERE NOT (id = ANY(%s)) RETURNING id", (keep,)
    ).fetchall()
    return sorted(row["id"] for row in rows)


def set_paused(conn: Connection, job_id: str, paused: bool) -> bool:
    """Return False when the job does not exist."""
    cur = conn.execute(
        "UPDATE jobs SET paused = %s, updated_at = now() WHERE id = %s", (paused, job_id)
    )
    return cur.rowcount > 0
