"""POST /webhook and /webhooks/{id}: accepted executions, delivery ids and their dedupe."""

from __future__ import annotations

import threading
from uuid import UUID

from fastapi.testclient import TestClient
from ingress_app import add_jobs, make_job, queue_length

from shared.runtime import Runtime
from shared.settings import Settings
from shared.store import executions


def _row(runtime: Runtime, execution_id: str) -> dict[str, object]:
    with runtime.db.transaction() as conn:
        row = executions.get(conn, UUID(execution_id))
    assert row is not None
    return row


def test_webhook_accepts_commits_and_enqueues(
    client: TestClient, runtime: Runtime, settings: Settings
) -> None:
    add_jobs(runtime, make_job())
    response = client.post("/webhook", json={"jobId": "hook", "payload": {"order": 42}})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "accepted" and body["jobId"] == "hook"
    row = _row(runtime, body["executionId"])
    assert row["trigger"] == "webhook"
    assert row["payload"] == {"order": 42}
    assert row["status"] == "queued"
    assert queue_length(settings) == 1


def test_job_webhook_takes_the_whole_body_as_payload(client: TestClient, runtime: Runtime) -> None:
    add_jobs(runtime, make_job())
    response = client.post("/webhooks/hook", json=[1, {"any": "shape"}])
    assert response.status_code == 202, response.text
    assert _row(runtime, response.json()["executionId"])["payload"] == [1, {"any": "shape"}]


def test_missing_payload_uses_the_jobs_own(client: TestClient, runtime: Runtime) -> None:
    add_jobs(runtime, make_job(payload={"default": True}))
    response = client.post("/webhook", json={"jobId": "hook"})
    assert response.status_code == 202
    assert _row(runtime, response.json()["executionId"])["payload"] == {"default": True}


def test_same_delivery_twenty_times_concurrently_makes_one_execution(
    client: TestClient, runtime: Runtime, settings: Settings
) -> None:
    add_jobs(runtime, make_job())
    barrier = threading.Barrier(20)
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def post() -> None:
        barrier.wait()
        response = client.post(
            "/webhook",
            json={"jobId": "hook", "payload": {"n": 1}},
            headers={"X-GitHub-Delivery": "delivery-1"},
        )
        with lock:
            answers.append((response.status_code, response.json().get("executionId", "")))

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in answers] == [202] * 20
    ids = {execution_id for _, execution_id in answers}
    with runtime.db.transaction() as conn:
        rows = executions.list_executions(conn, executions.ExecutionFilter(job_id="hook"))
    assert len(rows) == 1
    assert ids == {str(rows[0]["id"])}
    assert rows[0]["idempotency_key"] == "webhook:hook:delivery-1"
    assert queue_length(settings) == 1


def test_redelivery_after_the_first_answers_its_id(client: TestClient, runtime: Runtime) -> None:
    add_jobs(runtime, make_job())
    first = client.post("/webhooks/hook", json={}, headers={"Idempotency-Key": "k1"})
    again = client.post("/webhooks/hook", json={}, headers={"Idempotency-Key": "k1"})
    other = client.post("/webhooks/hook", json={}, headers={"Idempotency-Key": "k2"})
    assert first.status_code == again.status_code == other.status_code == 202
    assert again.json()["executionId"] == first.json()["executionId"]
    assert other.json()["executionId"] != first.json()["executionId"]


def test_redelivery_is_found_in_postgres_when_redis_forgot(
    client: TestClient, runtime: Runtime, settings: Settings
) -> None:
    add_jobs(runtime, make_job())
    first = client.post("/webhooks/hook", json={}, headers={"X-GitHub-Delivery": "d"})
    runtime.redis.delete(settings.key("dedupe", "hook", "d"))
    again = client.post("/webhooks/hook", json={}, headers={"X-GitHub-Delivery": "d"})
    assert again.status_code == 202
    assert again.json()["executionId"] == first.json()["executionId"]
    assert queue_length(settings) == 1


def test_without_delivery_id_every_post_is_a_new_execution(
    client: TestClient, runtime: Runtime
) -> None:
    add_jobs(runtime, make_job())
    ids = {client.post("/webhooks/hook", json={}).json()["executionId"] for _ in range(3)}
    assert len(ids) == 3
