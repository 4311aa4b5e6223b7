"""Named operations of the ticker's housekeeping: repair, retention and dedupe expiry.

Each statement touches at most `limit` rows, so one call holds row locks briefly and never
competes for long with the hot path; callers repeat until a call does less than `limit`.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from shared.db import Connection


def stale_pending(conn: Connection, older_than: datetime, limit: int) -> list[UUID]:
    """Executions committed but never handed to the broker (a crash between the two)."""
    rows = conn.execute(
        """
        SELECT id FROM executions
        WHERE status = 'pending' AND created_at < %s
        ORDER BY created_at
        LIMIT %s
        """,
        (older_than, limit),
    ).fetchall()
    return [row["id"] for row in rows]


def delete_executions_before(conn: Connection, before: datetime, limit: int) -> int:
    """Delete up to `limit` executions created before `before`, oldest first (attempts go with
    them by cascade)."""
    return conn.execute(
        """
        DELETE FROM executions WHERE id IN (
            SELECT id FROM executions WHERE created_at < %s
            ORDER BY created_at LIMIT %s
            FOR UPDATE SKIP LOCKED
        )
        """,
        (before, limit),
    ).rowcount


def expire_webhook_keys(conn: Connection, before: datetime, limit: int) -> int:
    """Forget the delivery ids of webhook executions created before `before`, so a redelivery
    after the dedupe window runs again; the executions themselves stay."""
    return conn.execute(
        """
        UPDATE executions SET idempotency_key = NULL WHERE id IN (
            SELECT id FROM executions
            WHERE trigger = 'webhook' AND idempotency_key IS NOT NULL AND created_at < %s
            ORDER BY created_at LIMIT %s
            FOR UPDATE SKIP LOCKED
        )
        """,
        (before, limit),
    ).rowcount
