"""Named operations on `executions` and `attempts`."""

from __future__ import annotations

import json
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


def insert_many(conn: Connection, news: list[NewExecution]) -> set[UUID]:
    """Insert pending executions in one statement; return the ids whose keys were new."""
    # One JSON document for the whole batch: psycopg adapts one string far faster than
    # arrays of long values.
    batch = json.dumps(
        [
            {
                "id": str(n.id),
                "job_id": n.job_id,
                "idempotency_key": n.idempotency_key,
                "trigger": n.trigger,
                "scheduled_at": n.scheduled_at.isoformat(),
                "job_snapshot": n.job_snapshot,
                "payload": n.payload,
                "replay_of": str(n.replay_of) if n.replay_of else None,
            }
            for n in news
        ],
        separators=(",", ":"),
    )
    rows = conn.execute(
        """
        INSERT INTO executions
            (id, job_id, idempotency_key, trigger, scheduled_at, job_snapshot, payload, replay_of)
        SELECT id, job_id, idempotency_key, trigger, scheduled_at, job_snapshot, payload, replay_of
        FROM jsonb_to_recordset(%s::jsonb) AS r (
            id uuid, job_id text, idempotency_key text, trigger text, scheduled_at timestamptz,
            job_snapshot jsonb, payload jsonb, replay_of uuid)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id
        """,
        (batch,),
    ).fetchall()
    return {row["id"] for row in rows}


def mark_queued_many(conn: Connection, queued: list[tuple[UUID, datetime]]) -> None:
    """`mark_queued` for many executions in one statement."""
    conn.execute(
        """
        UPDATE executions SET status = 'queued', enqueued_at = q.at
        FROM unnest(%s::uuid[], %s::timestamptz[]) AS q (id, at)
        WHERE executions.id = q.id AND executions.status = 'pending'
        """,
        ([execution_id for execution_id, _ in queued], [at for _, at in queued]),
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


def request_cancel(conn: Connection, execution_id: UUID, reason: str) -> str | None:
    """Cancel a live execution in one conditional statement: one that is not running ends
    `cancelled` at once; a running one gets `cancel_requested` and its worker ends it. Returns
    the status after the update, or None when the execution is missing or already terminal.
    (SET expressions see the row as it was, so `status` in the CASEs is the old status.)"""
    row = conn.execute(
        """
        UPDATE executions SET
            cancel_requested = true,
            status_reason = %(reason)s,
            status = CASE WHEN status = 'running' THEN status ELSE 'cancelled' END,
            finished_at = CASE WHEN status = 'running' THEN finished_at ELSE now() END,
            next_attempt_at = NULL
        WHERE id = %(id)s AND status IN ('pending', 'queued', 'running', 'retrying')
        RETURNING status
        """,
        {"id": execution_id, "reason": reason},
    ).fetchone()
    return row["status"] if row else None


# --- The worker's state transitions. Every one is conditional (on status and attempt number),
# so a duplicate or late message can never move an execution twice or record a second success.

CLAIMABLE_STATES = ("pending", "queued", "retrying")


@dataclass(frozen=True)
class ClaimRow:
    """An execution as a worker found it; `claimed_attempt` is set when this worker may run it."""

    id: UUID
    job_id: str
    status: str
    attempts: int
    claimed_attempt: int | None
    job_snapshot: str
    payload: Any
    scheduled_at: datetime
    # The current attempt (number `attempts`) of a running execution: when it began and
    # whether it has ended.
    attempt_started_at: datetime | None
    attempt_open: bool
    # What created it (cron, webhook, manual, replay): a label of the execution metrics.
    trigger: str = "manual"


def claim_many(conn: Connection, ids: list[UUID], now: datetime) -> dict[UUID, ClaimRow]:
    """Move each claimable execution to `running` with its next attempt row opened, in one
    statement. Executions that are running, terminal or claimed concurrently by another worker
    come back with `claimed_attempt` None; unknown ids do not come back.

    A row still `pending` (its trigger crashed before marking it queued) gets its enqueued_at
    here. The job snapshot comes back as JSON text so callers can cache its parsed form.
    """
    rows = conn.execute(
        """
        WITH req AS (SELECT DISTINCT id FROM unnest(%(ids)s::uuid[]) AS r (id)),
        claimed AS (
            UPDATE executions e
            SET status = 'running', attempts = e.attempts + 1,
                started_at = coalesce(e.started_at, %(now)s),
                enqueued_at = coalesce(e.enqueued_at, %(now)s),
                next_attempt_at = NULL
            FROM req
            WHERE e.id = req.id AND e.status IN ('pending', 'queued', 'retrying')
            RETURNING e.id, e.attempts
        ),
        opened AS (
            INSERT INTO attempts (execution_id, attempt, started_at)
            SELECT id, attempts, %(now)s FROM claimed
        )
        SELECT x.id, x.job_id, x.status, x.attempts, c.attempts AS claimed_attempt,
               x.job_snapshot::text AS job_snapshot, x.payload, x.scheduled_at, x.trigger,
               a.started_at AS attempt_started_at,
               coalesce(a.finished_at IS NULL, false) AS attempt_open
        FROM req
        JOIN executions x ON x.id = req.id
        LEFT JOIN claimed c ON c.id = x.id
        LEFT JOIN attempts a ON a.execution_id = x.id AND a.attempt = x.attempts
        """,
        {"ids": ids, "now": now},
    ).fetchall()
    return {row["id"]: ClaimRow(**row) for row in rows}


@dataclass(frozen=True)
class AttemptEnd:
    """How one attempt ended and the state its execution moves to."""

    execution_id: UUID
    attempt: int
    finished_at: datetime
    duration_ms: float
    outcome: str
    status: str  # 'succeeded', 'failed' or 'retrying'
    status_code: int | None = None
    error_class: str | None = None
    error_message: str | None = None
    response: str | None = None
    result: Any = None
    next_attempt_at: datetime | None = None


def finish_many(conn: Connection, ends: list[AttemptEnd]) -> dict[UUID, str]:
    """Close each attempt row and move its execution, in one statement; return the new
    status of each execution that moved. An execution moves only if it is still `running`
    that same attempt: a reclaimed or finished execution is left alone. One whose cancel was
    requested during the attempt ends `cancelled` instead of waiting for another attempt."""
    # One JSON document, not twelve arrays: psycopg dumps array parameters element by element
    # in Python, which cost the worker more CPU than the statement itself.
    batch = json.dumps(
        [
            {
                "id": str(e.execution_id),
                "attempt": e.attempt,
                "finished_at": e.finished_at.isoformat(),
                "duration_ms": e.duration_ms,
                "outcome": e.outcome,
                "status": e.status,
                "status_code": e.status_code,
                "error_class": e.error_class,
                "error_message": e.error_message,
                "response": e.response,
                "result": e.result,
                "next_attempt_at": e.next_attempt_at and e.next_attempt_at.isoformat(),
            }
            for e in ends
        ],
        separators=(",", ":"),
    )
    rows = conn.execute(
        """
        WITH r AS (
            SELECT * FROM jsonb_to_recordset(%s::jsonb)
            AS r (id uuid, attempt int, finished_at timestamptz, duration_ms float8,
                  outcome text, status text, status_code int, error_class text,
                  error_message text, response text, result jsonb, next_attempt_at timestamptz)
        ),
        closed AS (
            UPDATE attempts a
            SET finished_at = r.finished_at, duration_ms = r.duration_ms, outcome = r.outcome,
                status_code = r.status_code, error_class = r.error_class,
                error_message = r.error_message, response = r.response
            FROM r
            WHERE a.execution_id = r.id AND a.attempt = r.attempt AND a.finished_at IS NULL
            RETURNING a.execution_id, a.attempt
        )
        UPDATE executions e
        SET status = CASE WHEN r.status = 'retrying' AND e.cancel_requested
                          THEN 'cancelled' ELSE r.status END,
            finished_at = CASE WHEN r.status = 'retrying' AND NOT e.cancel_requested
                               THEN NULL ELSE r.finished_at END,
            next_attempt_at = CASE WHEN e.cancel_requested THEN NULL ELSE r.next_attempt_at END,
            result = r.result,
            error = CASE WHEN r.status = 'succeeded' THEN NULL ELSE r.error_message END
        FROM r JOIN closed c ON c.execution_id = r.id AND c.attempt = r.attempt
        WHERE e.id = r.id AND e.status = 'running' AND e.attempts = r.attempt
        RETURNING e.id, e.status
        """,
        (batch,),
    ).fetchall()
    return {row["id"]: row["status"] for row in rows}


WORKER_LOST = "WorkerLost"


def take_over(
    conn: Connection, execution_id: UUID, lost_attempt: int, now: datetime, *, give_up: bool
) -> int | None:
    """Close attempt `lost_attempt` of a running execution whose worker died as failed
    (`WorkerLost`), then either open the next attempt (returning its number) or, with
    `give_up`, fail the execution. None when another worker got there first."""
    message = f"worker lost during attempt {lost_attempt}"
    row = conn.execute(
        """
        WITH lost AS (
            UPDATE attempts
            SET finished_at = %(now)s, outcome = 'failed', error_class = %(class)s,
                error_message = %(message)s,
                duration_ms = extract(epoch FROM %(now)s - started_at) * 1000
            WHERE execution_id = %(id)s AND attempt = %(n)s AND finished_at IS NULL
        ),
        moved AS (
            UPDATE executions
            SET attempts = attempts + CASE WHEN %(give_up)s THEN 0 ELSE 1 END,
                status = CASE WHEN %(give_up)s THEN 'failed' ELSE 'running' END,
                finished_at = CASE WHEN %(give_up)s THEN %(now)s END,
                error = CASE WHEN %(give_up)s THEN %(message)s END
            WHERE id = %(id)s AND status = 'running' AND attempts = %(n)s
            RETURNING attempts
        ),
        opened AS (
            INSERT INTO attempts (execution_id, attempt, started_at)
            SELECT %(id)s, attempts, %(now)s FROM moved WHERE NOT %(give_up)s
        )
        SELECT attempts FROM moved
        """,
        {
            "id": execution_id,
            "n": lost_attempt,
            "now": now,
            "give_up": give_up,
            "class": WORKER_LOST,
            "message": message,
        },
    ).fetchone()
    return None if row is None else int(row["attempts"])


def unclaim(
    conn: Connection, execution_id: UUID, attempt: int, status: str, reason: str | None
) -> bool:
    """Undo the claim of attempt `attempt` before anything was dispatched: drop its attempt
    row and move the execution to `status`: `skipped` (concurrency policy, final) or back to
    `queued` / `retrying` (deferred: its message comes back later). False when the execution
    is no longer running that attempt (cancelled meanwhile, or taken over)."""
    row = conn.execute(
        """
        WITH moved AS (
            UPDATE executions
            SET status = %(status)s, attempts = attempts - 1, status_reason = %(reason)s,
                finished_at = CASE WHEN %(status)s = 'skipped' THEN now() END
            WHERE id = %(id)s AND status = 'running' AND attempts = %(n)s
            RETURNING id
        ),
        dropped AS (
            DELETE FROM attempts a USING moved
            WHERE a.execution_id = moved.id AND a.attempt = %(n)s
        )
        SELECT count(*) AS moved FROM moved
        """,
        {"id": execution_id, "n": attempt, "status": status, "reason": reason},
    ).fetchone()
    return bool(row and row["moved"])
