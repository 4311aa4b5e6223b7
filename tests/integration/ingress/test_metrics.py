"""`GET /metrics` of the ingress: webhook answers counted by status code, whoever gave them."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from ingress_app import add_jobs, make_job

from shared.runtime import Runtime


def webhooks(client: TestClient) -> dict[str, float]:
    """`chronos_webhooks_total` by status code, as a scrape reads it."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = re.findall(
        r'^chronos_webhooks_total\{status_code="(\d+)"\} (\S+)$', response.text, re.MULTILINE
    )
    return {code: float(value) for code, value in found}


def test_webhook_answers_are_counted_by_status_code(client: TestClient, runtime: Runtime) -> None:
    add_jobs(runtime, make_job("hook"))
    before = webhooks(client)

    assert client.post("/webhook", json={"jobId": "hook"}).status_code == 202
    assert client.post("/webhooks/hook", json={}).status_code == 202
    assert client.post("/webhook", json={"jobId": "nope"}).status_code == 404
    # Refused by the body guard before any route runs.
    refused = client.post("/webhook", content=b"x", headers={"Content-Type": "text/plain"})
    assert refused.status_code == 415
    # Not webhooks: not counted.
    assert client.get("/_health").status_code == 200
    assert client.get("/api/v1/jobs").status_code == 200

    after = webhooks(client)
    grew = {code: n - before.get(code, 0.0) for code, n in after.items()}
    assert {code: n for code, n in grew.items() if n} == {"202": 2, "404": 1, "415": 1}


def test_metrics_is_not_part_of_the_api_description(client: TestClient) -> None:
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]
