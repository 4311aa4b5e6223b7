"""Housekeeping on real rows: repair of pending executions, retention, dedupe expiry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import psycopg
import pytest
import redis

from services.ticker import housekeeping
from services.ticker.housekeeping import Housekeeper
from shared.broker import queue_name
from shared.runtime import Runtime


def insert(
    url: str,
    *,
    age: timedelta,
    status: str = "succeeded",
    trigger: str = "manual",
    key: str | None = None,
) -> UUID:
    execution_id = uuid4()
    at = datetime.now(UTC) - age
    with psycopg.connect(url) as conn:
        conn.execute(
            """
            INSERT INTO executions
                (id, job_id, idempotency_key, trigger, status, scheduled_at, created_at,
                 job_snapshot)
            VALUES (%s, 'job', %s, %s, %s, %s, %s, '{}')
            """,
            (execution_id, key, trigger, status, at, at),
        )
    return execution_id


def rows(url: str) -> dict[UUID, tuple[str, str | None, datetime | None]]:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT id, status, idempotency_key, enqueued_at FROM executions"
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in found}


def queued_ids(runtime: Runtime) -> list[str]:
    """Execution ids of the messages waiting on this test's queue."""
    client = redis.Redis.from_url(runtime.settings.redis_url)
    key = f"{runtime.settings.chronos_namespace}:{queue_name(runtime.settings)}.msgs"
    messages = [json.loads(raw) for raw in client.hvals(key)]
    client.close()
    return [m["args"][0] for m in messages]


@pytest.fixture
def keeper(runtime: Runtime) -> Housekeeper:
    return Housekeeper(
        runtime.db,
        runtime.enqueuer,
        retention=timedelta(days=180),
        dedupe_window=timedelta(hours=48),
    )


def test_repair_enqueues_executions_left_pending(
    keeper: Housekeeper, runtime: Runtime, database: str
) -> None:
    stranded = insert(database, age=timedelta(minutes=1), status="pending")
    in_flight = insert(database, age=timedelta(seconds=0), status="pending")
    done = insert(database, age=timedelta(minutes=1), status="succeeded")

    assert keeper.repair() == 1

    after = rows(database)
    assert after[stranded][0] == "queued" and after[stranded][2] is not None
    assert after[in_flight] == ("pending", None, None)
    assert after[done][0] == "succeeded"
    assert queued_ids(runtime) == [str(stranded)]
    # Once queued it is not sent again.
    assert keeper.repair() == 0
    assert queued_ids(runtime) == [str(stranded)]


def test_retention_deletes_old_executions_in_batches(
    keeper: Housekeeper, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(housekeeping, "BATCH", 2)
    old = [insert(database, age=timedelta(days=181)) for _ in range(5)]
    kept = insert(database, age=timedelta(days=179))
    with psycopg.connect(database) as conn:
        conn.execute(
            "INSERT INTO attempts (execution_id, attempt, started_at) VALUES (%s, 1, now())",
            (old[0],),
        )

    report = keeper.clean()

    assert report.deleted == 5
    assert set(rows(database)) == {kept}
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM attempts").fetchone() == (0,)


def test_webhook_dedupe_keys_expire_after_the_window(keeper: Housekeeper, database: str) -> None:
    expired = insert(database, age=timedelta(hours=49), trigger="webhook", key="webhook:job:a")
    fresh = insert(database, age=timedelta(hours=47), trigger="webhook", key="webhook:job:b")
    cron = insert(database, age=timedelta(hours=49), trigger="cron", key="cron:job:x")

    assert keeper.clean().keys_expired == 1

    after = rows(database)
    assert after[expired][1] is None
    assert after[fresh][1] == "webhook:job:b"
    assert after[cron][1] == "cron:job:x"
    # The execution itself stays; a redelivery of the same id is now accepted again.
    assert after[expired][0] == "succeeded"
    insert(database, age=timedelta(0), trigger="webhook", key="webhook:job:a")
