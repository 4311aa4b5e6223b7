"""At-least-once messages, exactly one outcome: duplicates, terminal executions, stray rows."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from http_target import Reply, Target, sequence
from worker_fixtures import attempts, make_job, wait_terminal

from services.workers.process import WorkerProcess
from shared.runtime import Runtime
from shared.store import executions


def test_duplicate_messages_deliver_once(
    runtime: Runtime, target: Target, worker: WorkerProcess
) -> None:
    fired = runtime.triggers.fire(make_job(target.url), "manual")
    for _ in range(4):
        runtime.enqueuer.enqueue(fired.execution_id)

    row = wait_terminal(runtime.db, fired.execution_id)
    time.sleep(1.0)  # let every duplicate be consumed

    assert row["status"] == "succeeded"
    assert len(target.requests_for(str(fired.execution_id))) == 1
    [only] = attempts(runtime.db, fired.execution_id)
    assert only["outcome"] == "succeeded"


def test_message_for_terminal_execution_is_ignored(
    runtime: Runtime, target: Target, worker: WorkerProcess
) -> None:
    target.script = sequence(Reply(404))
    fired = runtime.triggers.fire(make_job(target.url), "manual")
    before = wait_terminal(runtime.db, fired.execution_id)

    target.script = sequence(Reply(200))
    runtime.enqueuer.enqueue(fired.execution_id)
    marker = runtime.triggers.fire(make_job(target.url, id="marker"), "manual")
    wait_terminal(runtime.db, marker.execution_id)
    time.sleep(0.3)

    after = wait_terminal(runtime.db, fired.execution_id)
    assert (after["status"], after["attempts"], after["finished_at"]) == (
        "failed",
        1,
        before["finished_at"],
    )
    assert len(target.requests_for(str(fired.execution_id))) == 1


def test_row_left_pending_is_run_and_marked_enqueued(
    runtime: Runtime, target: Target, worker: WorkerProcess
) -> None:
    job = make_job(target.url)
    new = executions.NewExecution(
        id=uuid4(),
        job_id=job.id,
        trigger="manual",
        scheduled_at=datetime.now(UTC),
        job_snapshot=job.spec(),
        payload=None,
    )
    with runtime.db.transaction() as conn:
        executions.insert(conn, new)
    # The trigger "crashed" after enqueueing, before marking the row queued.
    runtime.enqueuer.enqueue(new.id)

    row = wait_terminal(runtime.db, new.id)

    assert row["status"] == "succeeded"
    assert row["enqueued_at"] is not None


def _running_since(
    runtime: Runtime, started: datetime, url: str, timeout: str
) -> executions.ClaimRow:
    """An execution whose attempt 1 began at `started` on a worker that then vanished."""
    job = make_job(url, timeout=timeout)
    new = executions.NewExecution(
        id=uuid4(),
        job_id=job.id,
        trigger="manual",
        scheduled_at=started,
        job_snapshot=job.spec(),
        payload=None,
    )
    with runtime.db.transaction() as conn:
        executions.insert(conn, new)
        row = executions.claim_many(conn, [new.id], started)[new.id]
    assert row.claimed_attempt == 1
    return row


@pytest.mark.parametrize("broker_url", ["redis"], indirect=True)
def test_redelivered_message_of_a_lost_attempt_takes_over(
    runtime: Runtime, target: Target, worker: WorkerProcess
) -> None:
    row = _running_since(runtime, datetime.now(UTC) - timedelta(minutes=5), target.url, "1s")

    runtime.enqueuer.enqueue(row.id)
    final = wait_terminal(runtime.db, row.id)

    assert final["status"] == "succeeded"
    first, second = attempts(runtime.db, row.id)
    assert (first["outcome"], first["error_class"]) == ("failed", "WorkerLost")
    assert first["finished_at"] is not None
    assert second["outcome"] == "succeeded"
    assert [r.attempt for r in target.requests_for(str(row.id))] == [2]


@pytest.mark.parametrize("broker_url", ["redis"], indirect=True)
def test_message_for_an_attempt_still_in_its_lease_waits(
    runtime: Runtime, target: Target, worker: WorkerProcess
) -> None:
    started = datetime.now(UTC)
    row = _running_since(runtime, started, target.url, "500ms")

    runtime.enqueuer.enqueue(row.id)
    final = wait_terminal(runtime.db, row.id)

    [request] = target.requests_for(str(row.id))
    assert request.attempt == 2
    assert final["finished_at"] - started >= timedelta(milliseconds=2400)
    assert final["status"] == "succeeded"
