"""What an operator sees of executions run by `chronos worker`: one trace from the trigger to the
target, a Sentry event for a failed execution, and JSON log lines that carry the execution id."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from http_target import Reply, Target
from telemetry_receivers import OtlpReceiver, SentryReceiver
from worker_fixtures import WorkerProcesses, make_job, wait_terminal

from shared.runtime import Runtime
from shared.store import jobs as job_store

pytestmark = pytest.mark.slow


@pytest.fixture
def sentry() -> Iterator[SentryReceiver]:
    receiver = SentryReceiver()
    yield receiver
    receiver.close()


def poll(probe: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every line the processes wrote, each of which must be one JSON object."""
    lines = []
    for line in output.splitlines():
        if not line.strip():
            continue
        try:
            lines.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"log line is not JSON: {line!r}") from None
    return lines


def save(runtime: Runtime, job: Any) -> None:
    with runtime.db.transaction() as conn:
        job_store.upsert(conn, job)


def test_one_trace_from_trigger_through_queue_to_target(
    runtime: Runtime,
    target: Target,
    otlp: OtlpReceiver,
    worker_processes: WorkerProcesses,
) -> None:
    worker_processes.env["OTLP_ENDPOINT"] = otlp.endpoint
    worker_processes.start("--processes", "1", "--threads", "2")
    job = make_job(target.url, webhook={"headers": {"Authorization": "Bearer s3cr3t-token"}})
    save(runtime, job)
    # The caller's trace, as a webhook's server span would hand it to the trigger path.
    trace_id = secrets.token_hex(16)
    caller = f"00-{trace_id}-{secrets.token_hex(8)}-01"

    fired = runtime.triggers.fire(job, "manual", message_options={"traceparent": caller})
    execution_id = str(fired.execution_id)
    assert wait_terminal(runtime.db, fired.execution_id)["status"] == "succeeded"

    (request,) = target.requests_for(execution_id)
    assert request.headers["traceparent"].split("-")[1] == trace_id

    def trace_spans() -> list[Any]:
        spans = [s for s in otlp.spans() if s.trace_id == trace_id]
        names = {s.name for s in spans}
        return spans if {"dispatch webhook", "POST"} <= names else []

    spans = poll(trace_spans, "the worker's spans")
    by_id = {s.span_id: s for s in spans}
    consumer = next(s for s in spans if s.name.endswith(".executions process"))
    dispatch = next(s for s in spans if s.name == "dispatch webhook")
    client = next(s for s in spans if s.name == "POST")
    assert consumer.attributes["chronos.execution_id"] == execution_id
    assert dispatch.attributes["chronos.job_id"] == job.id
    # The chain: execution span > dispatch span > HTTP client span > the target's request.
    assert by_id[dispatch.parent_id] is consumer
    assert by_id[client.parent_id] is dispatch
    assert request.headers["traceparent"].split("-")[2] == client.span_id
    assert all(s.service == "chronos-worker" for s in spans)

    worker_processes.stop_all()
    lines = json_lines(worker_processes.output())
    about = [line for line in lines if line.get("execution_id") == execution_id]
    assert any(line["message"] == "attempt finished" for line in about)
    for line in about:
        assert {"timestamp", "level", "logger", "message", "service"} <= line.keys()
        assert line["service"] == "worker"
    assert any(line.get("trace_id") == trace_id for line in about)
    assert "s3cr3t-token" not in worker_processes.output()


def test_failed_execution_sends_one_sentry_event(
    runtime: Runtime,
    sentry: SentryReceiver,
    worker_processes: WorkerProcesses,
) -> None:
    failing = Target(lambda n, r: Reply(status=400, body="no"))
    try:
        worker_processes.env["SENTRY_DSN"] = sentry.dsn
        worker_processes.start("--processes", "1", "--threads", "2")
        broken = make_job(failing.url, id="broken")
        fine = make_job(failing.url, id="fine", webhook={"success_codes": [400]})
        save(runtime, broken)
        save(runtime, fine)
        failed = runtime.triggers.fire(broken, "manual")
        succeeded = runtime.triggers.fire(fine, "manual")
        assert wait_terminal(runtime.db, failed.execution_id)["status"] == "failed"
        assert wait_terminal(runtime.db, succeeded.execution_id)["status"] == "succeeded"

        events = poll(sentry.events, "a Sentry event")
        # Give a duplicate or an event for the succeeded execution time to show up.
        time.sleep(1.0)
        events = sentry.events()
        assert len(events) == 1
        (event,) = events
        assert event["tags"]["job_id"] == "broken"
        assert event["tags"]["execution_id"] == str(failed.execution_id)
        assert event["fingerprint"] == ["chronos-execution-failed", "broken"]
    finally:
        failing.close()
