"""Named operations on `schedule_state`: the last cron fire created per job."""

from __future__ import annotations

from datetime import datetime

from shared.db import Connection


def last_fires(conn: Connection) -> dict[str, datetime]:
    rows = conn.execute("SELECT job_id, last_scheduled_at FROM schedule_state").fetchall()
    return {row["job_id"]: row["last_scheduled_at"] for row in rows}


def record_fires(conn: Connection, fires: dict[str, datetime]) -> None:
    """Remember the latest fire of each job; never moves a job's memory backwards, so a stale
    leader finishing late cannot make the next one fire again."""
    conn.execute(
        """
        INSERT INTO schedule_state (job_id, last_scheduled_at)
        SELECT f.job_id, f.at
        FROM unnest(%s::text[], %s::timestamptz[]) AS f (job_id, at)
        JOIN jobs ON jobs.id = f.job_id
        ON CONFLICT (job_id) DO UPDATE
            SET last_scheduled_at = GREATEST(
                    schedule_state.last_scheduled_at, EXCLUDED.last_scheduled_at),
                updated_at = now()
        """,
        (list(fires), list(fires.values())),
    )
