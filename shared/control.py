"""Acting on executions from outside the worker: cancel (CLI, API, `replace` policy), replay.

Cancelling is a conditional UPDATE in Postgres, which decides the outcome once even when a
worker is starting the execution at the same moment; then a message on the cancel channel tells
the worker running it (if any) to abort its in-flight attempt.
"""

from __future__ import annotations

import logging
from uuid import UUID

import redis

from shared.db import Database
from shared.errors import ConflictError, NotFoundError
from shared.jobs import Job
from shared.settings import Settings
from shared.store import executions
from shared.triggers import Triggers

log = logging.getLogger(__name__)

CANCEL_REASON = "cancelled on request"


def cancel_channel(settings: Settings) -> str:
    """The pub/sub channel on which every worker process listens for cancelled execution ids."""
    return settings.key("cancel")


def cancel(
    db: Database,
    client: redis.Redis,
    settings: Settings,
    execution_id: UUID,
    reason: str = CANCEL_REASON,
) -> str:
    """Cancel a pending, queued, retrying or running execution; return its status now:
    `cancelled`, or `running` while its worker aborts the in-flight attempt (within a second).

    Raises NotFoundError for an unknown id and ConflictError when it has already finished.
    """
    with db.transaction() as conn:
        status = executions.request_cancel(conn, execution_id, reason)
        if status is None:
            row = executions.get(conn, execution_id)
    if status is None:
        if row is None:
            raise NotFoundError("execution", str(execution_id))
        raise ConflictError(
            f"execution {execution_id} already ended {row['status']}; only pending, queued, "
            "retrying or running executions can be cancelled"
        )
    try:
        # Published whatever the status: a worker that has just claimed the row but not yet
        # registered its attempt remembers recent ids, so the message cannot fall in a gap.
        client.publish(cancel_channel(settings), str(execution_id))
    except redis.RedisError as exc:
        log.warning(
            "cancel not broadcast",
            extra={"execution_id": str(execution_id), "error": str(exc)},
        )
    return status


def replay(db: Database, triggers: Triggers, execution_id: UUID) -> UUID:
    """Run a finished execution again: a new execution (trigger `replay`, `replay_of` the
    original) with the original's job snapshot and payload, whatever the job looks like now.

    Raises NotFoundError for an unknown id and ConflictError while the original is still live.
    """
    with db.transaction() as conn:
        row = executions.get(conn, execution_id)
    if row is None:
        raise NotFoundError("execution", str(execution_id))
    if row["status"] not in executions.TERMINAL_STATES:
        raise ConflictError(
            f"execution {execution_id} is still {row['status']}; only finished executions "
            "can be replayed"
        )
    snapshot = row["job_snapshot"]
    triggered = triggers.fire(
        Job.model_validate(snapshot),
        "replay",
        payload=row["payload"],
        snapshot=snapshot,
        replay_of=execution_id,
    )
    return triggered.execution_id
