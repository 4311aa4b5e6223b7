"""Every error of the webhook endpoints: the status code and a JSON body naming the problem."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from ingress_app import MakeClient, add_jobs, make_job, queue_length

from services.ticker.housekeeping import Housekeeper
from shared.runtime import Runtime
from shared.settings import Settings
from shared.store import executions


def _error(response: object, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/json"  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["code"] == code, body
    assert isinstance(body["error"], str) and body["error"]
    return body  # type: ignore[no-any-return]


def _count(runtime: Runtime) -> int:
    with runtime.db.transaction() as conn:
        return len(executions.list_executions(conn, executions.ExecutionFilter()))


def test_invalid_json_is_400(client: TestClient, runtime: Runtime) -> None:
    add_jobs(runtime, make_job())
    body = _error(
        client.post(
            "/webhook", content=b'{"jobId": "hook",', headers={"content-type": "application/json"}
        ),
        400,
        "invalid_json",
    )
    assert "not valid JSON" in body["error"]
    _error(
        client.post("/webhooks/hook", content=b"", headers={"content-type": "application/json"}),
        400,
        "invalid_json",
    )
    deep = b"[" * 100_000 + b"]" * 100_000
    _error(
        client.post("/webhooks/hook", content=deep, headers={"content-type": "application/json"}),
        400,
        "invalid_json",
    )
    assert _count(runtime) == 0


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ({"payload": {}}, "missing_field"),
        ({"jobId": 7}, "invalid_field"),
        ({"jobId": "has space"}, "invalid_field"),
        ({"jobId": ""}, "invalid_field"),
    ],
)
def test_missing_or_invalid_job_id_is_400(
    client: TestClient, document: dict[str, object], code: str
) -> None:
    body = _error(client.post("/webhook", json=document), 400, code)
    assert body["field"] == "jobId"
    assert "jobId" in str(body["error"])


def test_body_that_is_not_an_object_is_400(client: TestClient) -> None:
    body = _error(client.post("/webhook", json=["hook"]), 400, "invalid_body")
    assert "JSON object" in str(body["error"])


def test_unknown_job_is_404(client: TestClient) -> None:
    body = _error(client.post("/webhook", json={"jobId": "nope"}), 404, "unknown_job")
    assert "'nope'" in str(body["error"])
    _error(client.post("/webhooks/nope", json={}), 404, "unknown_job")


def test_job_with_webhooks_disabled_is_404(client: TestClient, runtime: Runtime) -> None:
    add_jobs(runtime, make_job(trigger={"webhook_enabled": False}))
    body = _error(client.post("/webhook", json={"jobId": "hook"}), 404, "webhook_disabled")
    assert "does not accept webhooks" in str(body["error"])
    assert _count(runtime) == 0


def test_unknown_path_is_404(client: TestClient) -> None:
    body = _error(client.get("/nowhere"), 404, "not_found")
    assert "/nowhere" in str(body["error"])


def test_wrong_method_is_405(client: TestClient) -> None:
    response = client.get("/webhook")
    body = _error(response, 405, "method_not_allowed")
    assert "GET" in str(body["error"])
    assert "POST" in response.headers["allow"]


def test_paused_job_is_409(client: TestClient, runtime: Runtime) -> None:
    add_jobs(runtime, make_job())
    client.post("/api/v1/jobs/hook/pause")
    body = _error(client.post("/webhook", json={"jobId": "hook"}), 409, "job_paused")
    assert "paused" in str(body["error"]) and "resume" in str(body["error"])
    assert _count(runtime) == 0


def test_disabled_job_is_409(client: TestClient, runtime: Runtime) -> None:
    add_jobs(runtime, make_job(enabled=False))
    _error(client.post("/webhook", json={"jobId": "hook"}), 409, "job_disabled")


def test_body_over_max_body_bytes_is_413(make_client: MakeClient, runtime: Runtime) -> None:
    add_jobs(runtime, make_job())
    client = make_client(max_body_bytes=100)
    big = {"jobId": "hook", "payload": "x" * 200}
    body = _error(client.post("/webhook", json=big), 413, "body_too_large")
    assert "MAX_BODY_BYTES" in str(body["error"])

    def chunks() -> Iterator[bytes]:
        # No Content-Length: the size is only known while the body streams in.
        yield b'{"jobId": "hook", "payload": "'
        for _ in range(10):
            yield b"x" * 20
        yield b'"}'

    _error(
        client.post("/webhook", content=chunks(), headers={"content-type": "application/json"}),
        413,
        "body_too_large",
    )
    assert client.post("/webhook", json={"jobId": "hook"}).status_code == 202
    assert _count(runtime) == 1


def test_body_that_is_not_json_is_415(client: TestClient, runtime: Runtime) -> None:
    add_jobs(runtime, make_job())
    body = _error(
        client.post("/webhook", content=b"jobId=hook", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    assert "application/json" in str(body["error"]) and "text/plain" in str(body["error"])
    _error(client.post("/webhooks/hook", data={"a": "b"}), 415, "unsupported_media_type")
    ok = client.post(
        "/webhooks/hook", content=b"{}", headers={"content-type": "application/cloudevents+json"}
    )
    assert ok.status_code == 202


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_broker_down_is_503_and_leaves_no_execution(
    make_client: MakeClient, runtime: Runtime, settings: Settings
) -> None:
    add_jobs(runtime, make_job())
    client = make_client(broker_url=f"redis://127.0.0.1:{_free_port()}/0")
    response = client.post("/webhook", json={"jobId": "hook", "payload": {}})
    body = _error(response, 503, "unavailable")
    assert "broker unavailable" in str(body["error"])
    assert response.headers["retry-after"] == "1"
    assert _count(runtime) == 0
    assert queue_length(settings) == 0


def test_broker_down_keeps_a_keyed_delivery_for_the_repair_loop(
    make_client: MakeClient, client: TestClient, runtime: Runtime, settings: Settings
) -> None:
    """A concurrent copy of the delivery may have answered 202 with this execution's id, so
    the 503 must not delete it: the sender's retry finds it, and the repair loop enqueues it."""
    add_jobs(runtime, make_job())
    down = make_client(broker_url=f"redis://127.0.0.1:{_free_port()}/0")
    headers = {"X-GitHub-Delivery": "d-1"}
    _error(down.post("/webhooks/hook", json={"n": 1}, headers=headers), 503, "unavailable")
    with runtime.db.transaction() as conn:
        (pending,) = executions.list_executions(conn, executions.ExecutionFilter())
    assert pending["status"] == "pending"
    assert queue_length(settings) == 0

    retry = client.post("/webhooks/hook", json={"n": 1}, headers=headers)
    assert retry.status_code == 202, retry.text
    assert retry.json()["executionId"] == str(pending["id"])
    assert _count(runtime) == 1

    later = datetime.now(UTC) + timedelta(minutes=1)
    keeper = Housekeeper(
        runtime.db,
        runtime.enqueuer,
        retention=timedelta(days=180),
        dedupe_window=timedelta(hours=48),
        clock=lambda: later,
    )
    assert keeper.repair() == 1
    assert queue_length(settings) == 1
