"""`chronos ingress` processes: a webhook delivered end to end, and Postgres going away."""

from __future__ import annotations

import time
from uuid import UUID

import httpx
import psycopg
import pytest
from http_target import Target
from ingress_process import PrivatePostgres, StartIngress
from worker_fixtures import WorkerProcesses, wait_terminal

from shared import catalog
from shared.db import Database
from shared.jobs import Job
from shared.migrate import migrate
from shared.runtime import Runtime
from shared.settings import Settings

pytestmark = pytest.mark.slow

# What a caller would wait for an answer; a 503 must come well within it.
REQUEST_TIMEOUT_S = 20.0


def _queue_length(runtime: Runtime) -> int:
    ns = runtime.settings.chronos_namespace
    return int(runtime.redis.llen(f"{ns}:{ns}.executions"))


def test_webhook_is_delivered_by_a_worker_with_its_execution_id(
    start_ingress: StartIngress,
    worker_processes: WorkerProcesses,
    target: Target,
    runtime: Runtime,
) -> None:
    catalog.apply(runtime.db, [Job.model_validate({"id": "e2e", "webhook": {"url": target.url}})])
    ingress = start_ingress("--workers", "2")
    worker_processes.start("--processes", "1", "--threads", "2")

    response = httpx.post(
        f"{ingress.url}/webhook",
        json={"jobId": "e2e", "payload": {"order": 7, "items": ["a", "b"]}},
        timeout=REQUEST_TIMEOUT_S,
    )
    assert response.status_code == 202, response.text
    execution_id = response.json()["executionId"]

    row = wait_terminal(runtime.db, UUID(execution_id))
    assert row["status"] == "succeeded", (row, worker_processes.output())
    assert row["trigger"] == "webhook"
    received = target.requests_for(execution_id)
    assert len(received) == 1, [r.headers for r in target.received]
    assert received[0].headers["x-chronos-job-id"] == "e2e"
    assert httpx.Response(200, content=received[0].body).json() == {
        "order": 7,
        "items": ["a", "b"],
    }


def test_postgres_down_is_503_and_service_resumes_when_it_returns(
    start_ingress: StartIngress,
    private_postgres: PrivatePostgres,
    settings: Settings,
) -> None:
    with psycopg.connect(private_postgres.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE chronos")
    url = private_postgres.url.rsplit("/", 1)[0] + "/chronos"
    migrate(url)
    db = Database(url, max_size=1)
    catalog.apply(db, [Job.model_validate({"id": "j", "webhook": {"url": "http://127.0.0.1:9/"}})])
    db.close()
    ingress = start_ingress(env={"DATABASE_URL": url})
    runtime = Runtime(settings)
    try:

        def post() -> httpx.Response:
            return httpx.post(
                f"{ingress.url}/webhook", json={"jobId": "j"}, timeout=REQUEST_TIMEOUT_S
            )

        assert post().status_code == 202
        assert _queue_length(runtime) == 1

        private_postgres.stop()
        began = time.monotonic()
        down = post()
        assert down.status_code == 503, down.text
        assert time.monotonic() - began < REQUEST_TIMEOUT_S
        assert down.json()["code"] == "unavailable"
        assert "Postgres unavailable" in down.json()["error"]
        assert _queue_length(runtime) == 1, "nothing may be enqueued without its row"
        not_ready = httpx.get(f"{ingress.url}/_ready", timeout=REQUEST_TIMEOUT_S)
        assert not_ready.status_code == 503, not_ready.text
        assert not_ready.json()["checks"]["postgres"].startswith("unavailable")
        assert not_ready.json()["checks"]["broker"] == "ok"

        private_postgres.start()
        deadline = time.monotonic() + 30
        while (back := post()).status_code != 202:
            assert back.status_code == 503, back.text
            assert time.monotonic() < deadline, "ingress did not recover after Postgres returned"
            time.sleep(0.2)
        assert ingress.process.poll() is None, "ingress must recover without a restart"
        assert _queue_length(runtime) == 2
        with psycopg.connect(url) as conn:
            count = conn.execute("SELECT count(*) FROM executions").fetchone()
        assert count == (2,)
    finally:
        runtime.close()
