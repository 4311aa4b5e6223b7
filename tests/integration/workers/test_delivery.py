"""Delivery through the real pipeline: trigger → broker → in-process worker → loopback target."""

from __future__ import annotations

import json
import time
from uuid import UUID

import pytest
from http_target import Reply, Target, refused_url, sequence
from worker_fixtures import attempts, make_job, wait_terminal

from services.workers.process import WorkerProcess
from shared.runtime import Runtime
from shared.store import executions

RESULT = {"status": "ok", "message": "report generated", "data": {"rows": 3}}


def status(runtime: Runtime, execution_id: UUID) -> str:
    with runtime.db.transaction() as conn:
        row = executions.get(conn, execution_id)
    assert row is not None
    return str(row["status"])


def test_500_500_200_is_three_attempts_of_one_execution(
    runtime: Runtime, target: Target, worker: WorkerProcess
) -> None:
    target.script = sequence(Reply(500), Reply(500), Reply(200, RESULT))
    fired = runtime.triggers.fire(make_job(target.url), "manual", payload={"n": 1})

    row = wait_terminal(runtime.db, fired.execution_id)

    assert row["status"] == "succeeded"
    assert row["attempts"] == 3
    assert row["result"] == RESULT
    seen = target.requests_for(str(fired.execution_id))
    assert [r.attempt for r in seen] == [1, 2, 3]
    assert {r.headers["idempotency-key"] for r in seen} == {str(fired.execution_id)}
    assert {r.headers["x-chronos-job-id"] for r in seen} == {"deliver"}
    assert all(json.loads(r.body) == {"n": 1} for r in seen)
    assert seen[0].headers["x-chronos-scheduled-time"].endswith("Z")
    assert seen[0].headers["user-agent"].startswith("chronos-worker/")
    rows = attempts(runtime.db, fired.execution_id)
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in rows] == [
        (1, "retryable", 500),
        (2, "retryable", 500),
        (3, "succeeded", 200),
    ]
    assert all(a["finished_at"] >= a["started_at"] for a in rows)
    assert all(a["duration_ms"] is not None for a in rows)


def test_404_fails_after_one_attempt(
    runtime: Runtime, target: Target, worker: WorkerProcess
) -> None:
    target.script = sequence(Reply(404, "no such hook"))
    fired = runtime.triggers.fire(make_job(target.url), "manual")

    row = wait_terminal(runtime.db, fired.execution_id)

    assert row["status"] == "failed"
    assert row["attempts"] == 1
    assert "404" in row["error"]
    [only] = attempts(runtime.db, fired.execution_id)
    assert (only["outcome"], only["status_code"], only["response"]) == (
        "failed",
        404,
        "no such hook",
    )
    assert len(target.received) == 1


def test_429_retry_after_is_honoured(
    runtime: Runtime, target: Target, worker: WorkerProcess
) -> None:
    target.script = sequence(Reply(429, headers={"Retry-After": "1"}), Reply(200))
    job = make_job(
        target.url,
        retry_policy={"max_attempts": 3, "initial_interval": "50ms", "max_interval": "10s"},
    )
    fired = runtime.triggers.fire(job, "manual")

    row = wait_terminal(runtime.db, fired.execution_id)

    assert row["status"] == "succeeded"
    first, second = target.requests_for(str(fired.execution_id))
    # About the second asked for: not the 50 ms backoff, nor the 10 s cap.
    assert 0.9 <= second.at - first.at < 3.0


def test_waiting_to_retry_holds_no_worker_thread(
    runtime: Runtime, target: Target, worker: WorkerProcess
) -> None:
    target.script = lambda n, r: Reply(
        500 if r.headers["x-chronos-job-id"] == "flaky" and r.attempt == 1 else 200
    )
    flaky = make_job(
        target.url,
        id="flaky",
        retry_policy={"max_attempts": 2, "initial_interval": "5s", "max_interval": "5s"},
    )
    # As many as the worker has threads: a wait that held a thread would leave none free.
    waiting = [runtime.triggers.fire(flaky, "manual").execution_id for _ in range(4)]
    deadline = time.monotonic() + 10
    while {status(runtime, e) for e in waiting} != {"retrying"}:
        assert time.monotonic() < deadline, "executions did not reach retrying"
        time.sleep(0.05)

    quick = runtime.triggers.fire(make_job(target.url, id="quick"), "manual")

    assert wait_terminal(runtime.db, quick.execution_id, timeout=3)["status"] == "succeeded"
    assert {status(runtime, e) for e in waiting} == {"retrying"}
    for execution_id in waiting:
        row = wait_terminal(runtime.db, execution_id)
        assert (row["status"], row["attempts"]) == ("succeeded", 2)


def test_connection_refused_retries_then_fails(runtime: Runtime, worker: WorkerProcess) -> None:
    fired = runtime.triggers.fire(make_job(refused_url()), "manual")

    row = wait_terminal(runtime.db, fired.execution_id)

    assert row["status"] == "failed"
    assert row["attempts"] == 3
    assert "ConnectError" in row["error"]
    rows = attempts(runtime.db, fired.execution_id)
    assert [a["outcome"] for a in rows] == ["retryable"] * 3
    assert {a["error_class"] for a in rows} == {"ConnectError"}


def test_hanging_target_times_out_retries_then_fails(
    runtime: Runtime, target: Target, worker: WorkerProcess
) -> None:
    target.script = sequence(Reply(200, delay=3))
    job = make_job(
        target.url,
        timeout="300ms",
        retry_policy={"max_attempts": 2, "initial_interval": "50ms"},
    )
    fired = runtime.triggers.fire(job, "manual")

    row = wait_terminal(runtime.db, fired.execution_id)

    assert row["status"] == "failed"
    assert "ReadTimeout" in row["error"]
    rows = attempts(runtime.db, fired.execution_id)
    assert [a["outcome"] for a in rows] == ["timed_out", "timed_out"]
    assert all(a["duration_ms"] < 2500 for a in rows)
    assert len(target.requests_for(str(fired.execution_id))) == 2


def test_success_codes_and_redirects(
    runtime: Runtime, target: Target, worker: WorkerProcess
) -> None:
    target.script = lambda n, r: (
        Reply(302, headers={"Location": "/elsewhere"}) if r.path == "/hook" else Reply(200)
    )
    not_followed = runtime.triggers.fire(make_job(target.url), "manual")
    followed = runtime.triggers.fire(
        make_job(target.url, webhook={"follow_redirects": True}), "manual"
    )
    accepted = runtime.triggers.fire(
        make_job(target.url, webhook={"success_codes": [302]}), "manual"
    )

    assert wait_terminal(runtime.db, not_followed.execution_id)["status"] == "failed"
    assert wait_terminal(runtime.db, followed.execution_id)["status"] == "succeeded"
    assert wait_terminal(runtime.db, accepted.execution_id)["status"] == "succeeded"
    assert len(target.requests_for(str(not_followed.execution_id))) == 1
    assert [r.path for r in target.requests_for(str(followed.execution_id))] == [
        "/hook",
        "/elsewhere",
    ]


def test_large_response_is_stored_truncated(
    runtime: Runtime, target: Target, worker: WorkerProcess
) -> None:
    target.script = sequence(Reply(200, "x" * 200_000))
    fired = runtime.triggers.fire(make_job(target.url, webhook={"method": "GET"}), "manual")

    row = wait_terminal(runtime.db, fired.execution_id)

    assert row["status"] == "succeeded"
    assert row["result"] is None
    [only] = attempts(runtime.db, fired.execution_id)
    assert len(only["response"]) == 64 * 1024


def test_job_body_is_sent_instead_of_payload(
    runtime: Runtime, target: Target, worker: WorkerProcess
) -> None:
    job = make_job(
        target.url,
        webhook={"method": "PUT", "body": "plain text", "headers": {"Content-Type": "text/plain"}},
    )
    fired = runtime.triggers.fire(job, "manual", payload={"ignored": True})

    assert wait_terminal(runtime.db, fired.execution_id)["status"] == "succeeded"
    [request] = target.received
    assert (request.method, request.body) == ("PUT", b"plain text")
    assert request.headers["content-type"] == "text/plain"


@pytest.mark.parametrize("broker_url", ["redis"], indirect=True)
def test_missing_secret_fails_at_once(
    runtime: Runtime, target: Target, worker: WorkerProcess
) -> None:
    job = make_job(
        target.url, webhook={"auth": {"type": "bearer", "token": "${env:CHRONOS_NO_SUCH_VAR}"}}
    )
    fired = runtime.triggers.fire(job, "manual")

    row = wait_terminal(runtime.db, fired.execution_id)

    assert row["status"] == "failed"
    assert row["attempts"] == 1
    assert "CHRONOS_NO_SUCH_VAR" in row["error"]
    assert target.received == []


def test_cookies_a_target_sets_are_not_sent_with_later_deliveries(
    runtime: Runtime, target: Target, worker: WorkerProcess
) -> None:
    """One HTTP client serves every job of a worker process: a cookie one target sets must not
    ride along on deliveries of other jobs (or later runs of the same one)."""
    target.script = sequence(Reply(200, headers={"Set-Cookie": "session=s3cret; Path=/"}), Reply())
    first = runtime.triggers.fire(make_job(target.url, id="sets-cookie"), "manual")
    wait_terminal(runtime.db, first.execution_id)
    second = runtime.triggers.fire(make_job(target.url, id="other-job"), "manual")
    wait_terminal(runtime.db, second.execution_id)

    [later] = target.requests_for(str(second.execution_id))
    assert "cookie" not in later.headers, later.headers
