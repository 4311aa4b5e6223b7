"""The management API under /api/v1, against the same service functions as the CLI."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from uuid import UUID

from fastapi.testclient import TestClient
from ingress_app import MakeClient, add_jobs, make_job

from shared import catalog
from shared.runtime import Runtime
from shared.settings import Settings
from shared.store import executions

JOB = {
    "id": "api-job",
    "schedule": "0 9 * * *",
    "timezone": "Europe/Paris",
    "webhook": {"url": "http://127.0.0.1:9/x"},
}


def test_job_lifecycle(client: TestClient, runtime: Runtime) -> None:
    created = client.post("/api/v1/jobs", json=JOB)
    assert created.status_code == 201, created.text
    assert created.json()["id"] == "api-job" and created.json()["paused"] is False
    assert catalog.get_job(runtime.db, "api-job").job.schedule == "0 9 * * *"

    duplicate = client.post("/api/v1/jobs", json=JOB)
    assert duplicate.status_code == 409
    assert "already exists" in duplicate.json()["error"]

    assert [j["id"] for j in client.get("/api/v1/jobs").json()["jobs"]] == ["api-job"]
    assert client.get("/api/v1/jobs/api-job").json()["timezone"] == "Europe/Paris"

    replaced = client.put("/api/v1/jobs/api-job", json={**JOB, "schedule": "0 10 * * *"})
    assert replaced.status_code == 200
    assert replaced.json()["version"] == 2
    assert catalog.get_job(runtime.db, "api-job").job.schedule == "0 10 * * *"
    new = client.put("/api/v1/jobs/other", json={**JOB, "id": "other"})
    assert new.status_code == 201

    mismatch = client.put("/api/v1/jobs/api-job", json={**JOB, "id": "else"})
    assert mismatch.status_code == 400 and mismatch.json()["field"] == "id"

    assert client.post("/api/v1/jobs/api-job/pause").json()["paused"] is True
    assert catalog.get_job(runtime.db, "api-job").paused
    assert client.post("/api/v1/jobs/api-job/resume").json()["paused"] is False

    assert client.delete("/api/v1/jobs/api-job").status_code == 204
    gone = client.get("/api/v1/jobs/api-job")
    assert gone.status_code == 404
    assert gone.json() == {"error": "job 'api-job' not found", "code": "unknown_job"}
    assert client.delete("/api/v1/jobs/api-job").status_code == 404


def test_invalid_job_is_400_naming_the_field(client: TestClient) -> None:
    response = client.post("/api/v1/jobs", json={**JOB, "schedule": "every day"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_request"
    assert body["field"] == "schedule"
    assert "invalid cron expression" in body["error"]
    no_target = client.post("/api/v1/jobs", json={"id": "x"})
    assert no_target.status_code == 400
    assert "no target" in no_target.json()["error"]
    broken = client.post("/api/v1/jobs", content=b"{", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and broken.json()["code"] == "invalid_json"


def test_trigger_with_payload(client: TestClient, runtime: Runtime) -> None:
    add_jobs(runtime, make_job(payload={"default": 1}))
    response = client.post("/api/v1/jobs/hook/trigger", json={"payload": {"manual": True}})
    assert response.status_code == 202, response.text
    with runtime.db.transaction() as conn:
        row = executions.get(conn, UUID(response.json()["executionId"]))
    assert row is not None
    assert row["trigger"] == "manual" and row["payload"] == {"manual": True}
    bare = client.post("/api/v1/jobs/hook/trigger")
    assert bare.status_code == 202
    assert client.post("/api/v1/jobs/none/trigger").status_code == 404


def test_next_fire_times(client: TestClient, runtime: Runtime) -> None:
    add_jobs(runtime, make_job("daily", schedule="30 9 * * *", timezone="Asia/Tokyo"), make_job())
    response = client.get("/api/v1/jobs/daily/next", params={"count": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["timezone"] == "Asia/Tokyo"
    assert len(body["fires"]) == 3
    for fire in body["fires"]:
        assert fire["local"].endswith("T09:30:00+09:00")
        assert fire["utc"].endswith(("00:30:00Z", "00:30:00+00:00"))
    unscheduled = client.get("/api/v1/jobs/hook/next")
    assert unscheduled.status_code == 409 and "no schedule" in unscheduled.json()["error"]
    too_many = client.get("/api/v1/jobs/daily/next", params={"count": 0})
    assert too_many.status_code == 400 and too_many.json()["field"] == "count"


def _fire(runtime: Runtime, job_id: str, kind: str = "manual") -> UUID:
    job = catalog.get_job(runtime.db, job_id).job
    return runtime.triggers.fire(job, kind, payload={"job": job_id}).execution_id  # type: ignore[arg-type]


def test_executions_filters_and_cursor_pages(client: TestClient, runtime: Runtime) -> None:
    add_jobs(runtime, make_job("a"), make_job("b"))
    made = [_fire(runtime, "a") for _ in range(5)] + [_fire(runtime, "b", "webhook")]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"job": "a", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/executions", params=params).json()
        seen += [row["id"] for row in page["executions"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [str(i) for i in reversed(made[:5])], "newest first, no gaps or repeats"

    webhooks = client.get("/api/v1/executions", params={"trigger": "webhook"}).json()
    assert [row["id"] for row in webhooks["executions"]] == [str(made[5])]
    queued = client.get("/api/v1/executions", params={"status": "queued"}).json()
    assert len(queued["executions"]) == 6
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert client.get("/api/v1/executions", params={"since": future}).json()["executions"] == []
    assert len(client.get("/api/v1/executions", params={"until": future}).json()["executions"]) == 6

    bad_status = client.get("/api/v1/executions", params={"status": "done"})
    assert bad_status.status_code == 400 and bad_status.json()["field"] == "status"
    bad_cursor = client.get("/api/v1/executions", params={"cursor": "garbage"})
    assert bad_cursor.status_code == 400 and bad_cursor.json()["code"] == "invalid_cursor"


def test_execution_with_attempts_and_replay(client: TestClient, runtime: Runtime) -> None:
    add_jobs(runtime, make_job())
    original = _fire(runtime, "hook")
    got = client.get(f"/api/v1/executions/{original}")
    assert got.status_code == 200
    assert got.json()["attempts_detail"] == [] and got.json()["job_snapshot"]["id"] == "hook"

    live = client.post(f"/api/v1/executions/{original}/replay")
    assert live.status_code == 409 and "still queued" in live.json()["error"]
    with runtime.db.transaction() as conn:
        conn.execute("UPDATE executions SET status = 'failed' WHERE id = %s", (original,))
    # The job changes; a replay still runs what the original ran.
    add_jobs(runtime, make_job(payload={"new": True}, timeout="9s"))
    replay = client.post(f"/api/v1/executions/{original}/replay")
    assert replay.status_code == 202, replay.text
    assert replay.json()["replayOf"] == str(original)
    with runtime.db.transaction() as conn:
        new = executions.get(conn, UUID(replay.json()["executionId"]))
        old = executions.get(conn, original)
    assert new is not None and old is not None
    assert new["trigger"] == "replay" and new["replay_of"] == original
    assert new["payload"] == old["payload"] == {"job": "hook"}
    assert new["job_snapshot"] == old["job_snapshot"]

    missing = client.get("/api/v1/executions/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_execution"
    not_uuid = client.get("/api/v1/executions/nope")
    assert not_uuid.status_code == 400 and not_uuid.json()["field"] == "execution_id"


def test_cancel(client: TestClient, runtime: Runtime) -> None:
    add_jobs(runtime, make_job())
    execution_id = _fire(runtime, "hook")
    response = client.post(f"/api/v1/executions/{execution_id}/cancel")
    assert response.json() == {"executionId": str(execution_id), "status": "cancelled"}
    again = client.post(f"/api/v1/executions/{execution_id}/cancel")
    assert again.status_code == 409


def test_api_token(make_client: MakeClient, runtime: Runtime) -> None:
    add_jobs(runtime, make_job())
    client = make_client(api_token="tok")
    denied = client.get("/api/v1/jobs")
    assert denied.status_code == 401
    assert denied.json()["code"] == "missing_token" and "API_TOKEN" in denied.json()["error"]
    wrong = client.get("/api/v1/jobs", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_token"
    ok = client.get("/api/v1/jobs", headers={"Authorization": "Bearer tok"})
    assert ok.status_code == 200
    # The token guards the management API only; webhooks have their own secret.
    assert client.post("/webhook", json={"jobId": "hook"}).status_code == 202


def test_health_ready_and_openapi(client: TestClient, make_client: MakeClient) -> None:
    assert client.get("/_health").json() == {"status": "ok"}
    ready = client.get("/_ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "broker": "ok"}
    down = make_client(broker_url="redis://127.0.0.1:1/0").get("/_ready")
    assert down.status_code == 503
    assert down.json()["checks"]["postgres"] == "ok"
    assert down.json()["checks"]["broker"].startswith("unavailable")
    assert "broker" in down.json()["error"]

    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/webhook",
        "/webhooks/{job_id}",
        "/_health",
        "/_ready",
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/pause",
        "/api/v1/jobs/{job_id}/resume",
        "/api/v1/jobs/{job_id}/trigger",
        "/api/v1/jobs/{job_id}/next",
        "/api/v1/executions",
        "/api/v1/executions/{execution_id}",
        "/api/v1/executions/{execution_id}/replay",
    ):
        assert path in paths, path
    webhook_body = paths["/webhook"]["post"]["requestBody"]["content"]["application/json"]
    assert "jobId" in webhook_body["schema"]["properties"]


def test_rabbitmq_broker_ready_and_accepting(
    make_client: MakeClient, runtime: Runtime, settings: Settings
) -> None:
    import pika

    amqp = os.environ.get("CHRONOS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    queue = f"{settings.chronos_namespace}.executions"
    add_jobs(runtime, make_job())
    try:
        client = make_client(broker_url=amqp)
        ready = client.get("/_ready")
        assert ready.status_code == 200, ready.text
        assert client.post("/webhook", json={"jobId": "hook"}).status_code == 202
        probe = pika.BlockingConnection(pika.URLParameters(amqp))
        declared = probe.channel().queue_declare(queue, passive=True)
        probe.close()
        assert declared.method.message_count == 1
    finally:
        connection = pika.BlockingConnection(pika.URLParameters(amqp))
        channel = connection.channel()
        for suffix in ("", ".DQ", ".XQ"):
            channel.queue_delete(queue + suffix)
        connection.close()
