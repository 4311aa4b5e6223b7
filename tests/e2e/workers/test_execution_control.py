"""Execution control with real `chronos worker` processes: concurrency policies, attempt timeouts,
cancellation and the shared rate limit, observed at loopback targets and in Postgres."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import redis
from http_target import Reply, Target
from worker_fixtures import REDIS_URL, WorkerProcesses, attempts, make_job, wait_terminal

from shared import control
from shared.runtime import Runtime
from shared.store import executions

pytestmark = pytest.mark.slow


@pytest.fixture
def broker_url() -> str:
    """Redis only: nothing here depends on the broker, and the suite's time is shared."""
    return REDIS_URL


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def status_of(runtime: Runtime, execution_id: UUID) -> dict[str, Any]:
    with runtime.db.transaction() as conn:
        row = executions.get(conn, execution_id)
    assert row is not None
    return row


@dataclass
class Connection:
    execution_id: str
    opened: float
    closed: float | None = None


class HangingTarget:
    """A raw HTTP/1.1 server: it never answers its first `hang_first` requests (or any, with
    `hang_all`), answers 200 to the others, and records when each connection was closed."""

    def __init__(self) -> None:
        self.hang_all = False
        self.hang_first = 0
        self.connections: list[Connection] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/hook"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
            execution_id = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in head.split("\r\n")
                    if line.startswith("x-chronos-execution-id:")
                ),
                "",
            )
            record = Connection(execution_id, time.monotonic())
            self.connections.append(record)
            if self.hang_all or len(self.connections) <= self.hang_first:
                while conn.recv(65536):
                    pass
                record.closed = time.monotonic()
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    def for_execution(self, execution_id: UUID) -> list[Connection]:
        return [c for c in self.connections if c.execution_id == str(execution_id)]

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def hanging() -> Iterator[HangingTarget]:
    server = HangingTarget()
    yield server
    server.close()


def start_workers(runtime: Runtime, workers: WorkerProcesses, url: str) -> None:
    """Two worker processes, ready: a warm-up execution has gone through."""
    workers.start("--processes", "2", "--threads", "4")
    warmup = runtime.triggers.fire(make_job(url, id="warmup"), "manual")
    assert wait_terminal(runtime.db, warmup.execution_id, timeout=60)["status"] == "succeeded"


def test_forbid_skips_fires_while_an_attempt_runs(
    runtime: Runtime, target: Target, worker_processes: WorkerProcesses
) -> None:
    start_workers(runtime, worker_processes, target.url)
    target.script = lambda n, r: Reply(200, delay=3.0)
    job = make_job(target.url, id="slow", concurrency_policy="forbid", timeout="10s")
    ids = []
    for _ in range(6):
        ids.append(runtime.triggers.fire(job, "manual").execution_id)
        time.sleep(1.0)
    rows = [wait_terminal(runtime.db, i, timeout=30) for i in ids]

    seen = sorted(
        (r for r in target.received if r.headers.get("x-chronos-job-id") == "slow"),
        key=lambda r: r.at,
    )
    for earlier, later in itertools.pairwise(seen):
        assert later.at >= earlier.at + 3.0, "two attempts overlapped at the target"
    succeeded = {str(r["id"]) for r in rows if r["status"] == "succeeded"}
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert len(succeeded) >= 2
    assert len(skipped) >= 2
    assert len(succeeded) + len(skipped) == 6
    assert {r.execution_id for r in seen} == succeeded
    for row in skipped:
        reason = row["status_reason"]
        assert "still running execution" in reason and "concurrency_policy forbid" in reason
        assert reason.split("execution ", 1)[1].split(" ")[0] in succeeded
        assert attempts(runtime.db, row["id"]) == []


def test_replace_aborts_the_running_attempt_and_runs_the_new_one(
    runtime: Runtime, hanging: HangingTarget, target: Target, worker_processes: WorkerProcesses
) -> None:
    start_workers(runtime, worker_processes, target.url)
    hanging.hang_first = 1
    job = make_job(hanging.url, id="latest", concurrency_policy="replace", timeout="30s")
    old = runtime.triggers.fire(job, "manual").execution_id
    wait_for(lambda: hanging.for_execution(old), 30, "the first request")

    new = runtime.triggers.fire(job, "manual").execution_id
    assert wait_terminal(runtime.db, new, timeout=30)["status"] == "succeeded"
    replaced = wait_terminal(runtime.db, old, timeout=10)

    assert replaced["status"] == "cancelled"
    assert replaced["status_reason"] == (
        f"replaced by execution {new} (concurrency_policy replace)"
    )
    assert [a["outcome"] for a in attempts(runtime.db, old)] == ["cancelled"]
    (first,) = hanging.for_execution(old)
    (second,) = hanging.for_execution(new)
    assert first.closed is not None, "the replaced request's connection was not closed"
    assert first.closed <= second.opened


def test_hanging_target_times_out_each_attempt_and_frees_the_lock(
    runtime: Runtime, hanging: HangingTarget, target: Target, worker_processes: WorkerProcesses
) -> None:
    start_workers(runtime, worker_processes, target.url)
    hanging.hang_all = True
    job = make_job(
        hanging.url,
        id="stuck",
        concurrency_policy="forbid",
        timeout="2s",
        retry_policy={"max_attempts": 2, "initial_interval": "100ms", "max_interval": "100ms"},
    )
    execution = runtime.triggers.fire(job, "manual").execution_id
    row = wait_terminal(runtime.db, execution, timeout=30)

    # Whether an execution whose last attempt timed out ends `failed` or `timed_out` is the
    # runner's retry contract; here: every attempt was cut at the timeout and recorded so.
    assert row["status"] in ("failed", "timed_out")
    tries = attempts(runtime.db, execution)
    assert [a["outcome"] for a in tries] == ["timed_out", "timed_out"]
    for attempt in tries:
        assert 1000 <= attempt["duration_ms"] <= 3000
    assert all(c.closed is not None for c in hanging.for_execution(execution))
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert client.exists(runtime.settings.key("lock", "stuck")) == 0
    finally:
        client.close()


def test_cancel_running_aborts_within_a_second_and_retrying_gets_no_more_attempts(
    runtime: Runtime, hanging: HangingTarget, target: Target, worker_processes: WorkerProcesses
) -> None:
    start_workers(runtime, worker_processes, target.url)
    hanging.hang_first = 1
    running_job = make_job(hanging.url, id="hangs", timeout="30s")
    running = runtime.triggers.fire(running_job, "manual").execution_id
    wait_for(lambda: hanging.for_execution(running), 30, "the request")

    asked_at = datetime.now(UTC)
    asked = time.monotonic()
    assert control.cancel(runtime.db, runtime.redis, runtime.settings, running) == "running"
    wait_for(lambda: hanging.for_execution(running)[0].closed, 5, "the connection to close")
    closed = hanging.for_execution(running)[0].closed
    assert closed is not None and closed - asked < 1.0
    row = wait_terminal(runtime.db, running, timeout=5)
    assert row["status"] == "cancelled"
    assert row["finished_at"] - asked_at < timedelta(seconds=1)
    assert [a["outcome"] for a in attempts(runtime.db, running)] == ["cancelled"]

    target.script = lambda n, r: Reply(500)
    failing_job = make_job(
        target.url,
        id="flaky",
        retry_policy={"max_attempts": 5, "initial_interval": "2s", "max_interval": "2s"},
    )
    retrying = runtime.triggers.fire(failing_job, "manual").execution_id
    wait_for(lambda: status_of(runtime, retrying)["status"] == "retrying", 30, "retrying")
    assert control.cancel(runtime.db, runtime.redis, runtime.settings, retrying) == "cancelled"
    time.sleep(3.0)  # past the retry's delay: its message arrives and must do nothing
    assert status_of(runtime, retrying)["status"] == "cancelled"
    assert len(target.requests_for(str(retrying))) == 1
    assert len(attempts(runtime.db, retrying)) == 1


def test_rate_limit_is_shared_by_two_worker_processes(
    runtime: Runtime, target: Target, worker_processes: WorkerProcesses
) -> None:
    start_workers(runtime, worker_processes, target.url)
    job = make_job(target.url, id="gentle", rate_limit={"per_second": 5})
    started = time.monotonic()
    for i in range(100):
        runtime.triggers.fire(job, "manual", payload={"i": i})
    time.sleep(max(0.0, 10.0 - (time.monotonic() - started)))

    arrivals = sorted(
        r.at for r in target.received if r.headers.get("x-chronos-job-id") == "gentle"
    )
    busiest = max(sum(1 for b in arrivals if a <= b < a + 1.0) for a in arrivals)
    assert busiest <= 5
    # Limited, not stalled: close to 5/s over the run.
    assert len(arrivals) >= 35
