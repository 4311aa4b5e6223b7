"""`chronos worker` processes: death mid-attempt, a thousand executions over two processes, and
the queues a worker consumes."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from http_target import Reply, Target
from worker_fixtures import WorkerProcesses, attempts, make_job, wait_terminal

from shared.broker import queue_name
from shared.runtime import Runtime
from shared.store import executions

pytestmark = pytest.mark.slow

SECRET = "sigkill-secret-4a1f0c"


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sigkill_mid_request_then_new_worker_finishes_the_execution(
    runtime: Runtime, target: Target, worker_processes: WorkerProcesses
) -> None:
    worker_processes.env["CHRONOS_T_SECRET"] = SECRET
    target.script = lambda n, r: Reply(200, delay=30 if n == 0 else 0)
    job = make_job(
        target.url,
        timeout="2s",
        webhook={"auth": {"type": "bearer", "token": "${env:CHRONOS_T_SECRET}"}},
    )
    first = worker_processes.start("--processes", "1", "--threads", "2")
    fired = runtime.triggers.fire(job, "manual")
    wait_for(lambda: len(target.received) == 1, 30, "the first request")

    worker_processes.kill(first)
    worker_processes.start("--processes", "1", "--threads", "2")
    row = wait_terminal(runtime.db, fired.execution_id, timeout=60)

    assert row["status"] == "succeeded"
    rows = attempts(runtime.db, fired.execution_id)
    assert [a["outcome"] for a in rows].count("succeeded") == 1
    assert (rows[0]["outcome"], rows[0]["error_class"]) == ("failed", "WorkerLost")
    assert all(a["finished_at"] is not None for a in rows)
    seen = target.requests_for(str(fired.execution_id))
    assert [r.attempt for r in seen] == list(range(1, len(seen) + 1))
    assert seen[0].headers["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in worker_processes.output()


def test_thousand_triggers_drained_by_two_processes(
    runtime: Runtime, target: Target, worker_processes: WorkerProcesses
) -> None:
    count = 1000
    worker_processes.start("--processes", "2", "--threads", "8")
    job = make_job(target.url)
    with ThreadPoolExecutor(4) as pool:
        ids = list(
            pool.map(
                lambda i: runtime.triggers.fire(job, "manual", payload={"i": i}).execution_id,
                range(count),
            )
        )

    def succeeded() -> bool:
        with runtime.db.transaction() as conn:
            n = conn.execute(
                "SELECT count(*) AS n FROM executions WHERE status = 'succeeded'"
            ).fetchone()
        return n is not None and n["n"] == count

    wait_for(succeeded, 120, f"{count} succeeded executions")

    by_id = Counter(r.execution_id for r in target.received)
    assert set(by_id) == {str(i) for i in ids}
    pairs = Counter((r.execution_id, r.attempt) for r in target.received)
    assert max(pairs.values()) == 1


def test_queues_option_limits_what_a_worker_consumes(
    runtime: Runtime, target: Target, worker_processes: WorkerProcesses
) -> None:
    target.script = lambda n, r: Reply(500 if n == 0 else 200)
    fired = runtime.triggers.fire(make_job(target.url), "manual")

    worker_processes.start("--processes", "1", "--threads", "1", "--queues", "elsewhere")
    wait_for(lambda: "ready for action" in worker_processes.output(), 30, "the worker to boot")
    time.sleep(1.0)
    with runtime.db.transaction() as conn:
        row = executions.get(conn, fired.execution_id)
    assert row is not None and row["status"] == "queued"
    assert target.received == []

    # Named explicitly, its queue is consumed, retries (delayed messages) included.
    worker_processes.start("--queues", queue_name(runtime.settings))
    row = wait_terminal(runtime.db, fired.execution_id, timeout=60)
    assert (row["status"], row["attempts"]) == ("succeeded", 2)
