"""Named operations on `executions` and `attempts`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from shared.db import Connection

TERMINAL_STATES = ("succeeded", "failed", "timed_out", "skipped", "cancelled")
LIVE_STATES = ("pending", "queued", "running", "retrying")
ALL_STATES = LIVE_STATES + TERMINAL_STATES
TRIGGER_KINDS = ("cron", "webhook", "manual", "replay")


@dataclass(frozen=True)
class NewExecution:
    id: UUID
    job_id: str
    trigger: str
    scheduled_at: datetime
    job_snapshot: dict[str, Any]
    payload: Any
    idempotency_key: str | None = None
    replay_of: UUID | None = None


def insert(conn: Connection, new: NewExecution) -> UUID | None:
    """Insert a pending execution; None when the idempotency key already exists."""
    row = conn.execute(
        """
        INSERT INTO executions
            (id, job_id, idempotency_key, trigger, scheduled_at, job_snapshot, payload, replay_of)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id
        """,
        (
            new.id,
            new.job_id,
            new.idempotency_key,
            new.trigger,
            new.scheduled_at,
            Jsonb(new.job_snapshot),
            Jsonb(new.payload),
            new.replay_of,
        ),
    ).fetchone()
    return row["id"] if row else None


def id_for_key(conn: Connection, key: str) -> UUID | None:
    row = conn.execute("SELECT id FROM executions WHERE idempotency_key = %s", (key,)).fetchone()
    return row["id"] if row else None


def mark_queued(conn: Connection, execution_id: UUID, at: datetime) -> None:
    """pending → queued once the broker holds the message. A worker may have started it
    already (it then set enqueued_at itself), so only a pending row moves."""
    conn.execute(
        "UPDATE executions SET status = 'queued', enqueued_at = %s "
        "WHERE id = %s AND status = 'pending'",
        (at, execution_id),
    )


def discard_pending(conn: Connection, execution_id: UUID) -> None:
    """Undo an insert whose message never reached the broker, so a 503 leaves nothing behind."""
    conn.execute("DELETE FROM executions WHERE id = %s AND status = 'pending'", (execution_id,))


_EXECUTION_COLUMNS = """
    id, job_id, trigger, status, status_reason, idempotency_key, scheduled_at, created_at,
    enqueued_at, started_at, finished_at, next_attempt_at, attempts, payload, result, error,
    replay_of, cancel_requested
"""


def get(conn: Connection, execution_id: UUID) -> dict[str, Any] | None:
    return conn.execute(
        f"SELECT {_EXECUTION_COLUMNS}, job_snapshot FROM executions WHERE id = %s",
        (execution_id,),
    ).fetchone()


def attempts_of(conn: Connection, execution_id: UUID) -> list[dict[str, Any]]:
    return conn.execute(
        """
        SELECT attempt, started_at, finished_at, duration_ms, outcome, status_code,
               error_class, error_message, response
        FROM attempts WHERE execution_id = %s ORDER BY attempt
        """,
        (execution_id,),
    ).fetchall()


@dataclass(frozen=True)
class ExecutionFilter:
    job_id: str | None = None
    status: str | None = None
    trigger: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    # Keyset cursor: the (created_at, id) of the last row of the previous page.
    before: tuple[datetime, UUID] | None = None
    limit: int = 50


def list_executions(conn: Connection, flt: ExecutionFilter) -> list[dict[str, Any]]:
    """Newest first. Each filter maps onto one of the (x, created_at DESC, id DESC) indexes."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("job_id", flt.job_id), ("status", flt.status), ("trigger", flt.trigger)):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    if flt.since is not None:
        clauses.append("created_at >= %s")
        params.append(flt.since)
    if flt.until is not None:
        clauses.append("created_at < %s")
        params.append(flt.until)
    if flt.before is not None:
        clauses.append("(created_at, id) < (%s, %s)")
        params.extend(flt.before)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    params.append(flt.limit)
    return conn.execute(
        f"SELECT {_EXECUTION_COLUMNS} FROM executions {where} "
        "ORDER BY created_at DESC, id DESC LIMIT %s",
        params,
    ).fetchall()
