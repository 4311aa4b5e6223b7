"""Who may post a webhook: the WEBHOOK_SECRET bearer, GitHub and Standard Webhooks signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from fastapi.testclient import TestClient
from ingress_app import MakeClient, add_jobs, make_job

from services.ingress.auth import sign_standard_webhooks
from shared.runtime import Runtime

GITHUB_SECRET = "gh-secret"
SW_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-key").decode()


def _github_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_bearer_secret_is_required_when_set(make_client: MakeClient, runtime: Runtime) -> None:
    add_jobs(runtime, make_job())
    client = make_client(webhook_secret="s3cret")
    missing = client.post("/webhook", json={"jobId": "hook"})
    assert missing.status_code == 401
    assert missing.json()["code"] == "missing_token"
    assert missing.json()["field"] == "Authorization"
    wrong = client.post("/webhook", json={"jobId": "hook"}, headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 401
    assert "WEBHOOK_SECRET" in wrong.json()["error"]
    unknown = client.post("/webhook", json={"jobId": "secret-job-name"})
    assert unknown.status_code == 401, "unknown jobs must not be told apart from known ones"
    ok = client.post("/webhook", json={"jobId": "hook"}, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 202


def _github_job() -> object:
    return make_job("gh", trigger={"secret": GITHUB_SECRET, "signature": "github"})


def test_github_signature_right_is_accepted_wrong_is_401(
    client: TestClient, runtime: Runtime
) -> None:
    add_jobs(runtime, _github_job())  # type: ignore[arg-type]
    body = json.dumps({"action": "opened", "number": 1}).encode()
    headers = {"content-type": "application/json", "X-GitHub-Delivery": "guid-1"}
    ok = client.post(
        "/webhooks/gh",
        content=body,
        headers={**headers, "X-Hub-Signature-256": _github_signature(GITHUB_SECRET, body)},
    )
    assert ok.status_code == 202, ok.text

    wrong = client.post(
        "/webhooks/gh",
        content=body,
        headers={**headers, "X-Hub-Signature-256": _github_signature("other", body)},
    )
    assert wrong.status_code == 401
    assert wrong.json() == {
        "error": "X-Hub-Signature-256 does not match the body",
        "code": "invalid_signature",
        "field": "X-Hub-Signature-256",
    }
    missing = client.post("/webhooks/gh", content=body, headers=headers)
    assert missing.status_code == 401
    assert missing.json()["code"] == "missing_signature"


def test_signed_job_needs_no_bearer(make_client: MakeClient, runtime: Runtime) -> None:
    add_jobs(runtime, _github_job())  # type: ignore[arg-type]
    client = make_client(webhook_secret="s3cret")
    body = b'{"zen": "hi"}'
    response = client.post(
        "/webhooks/gh",
        content=body,
        headers={
            "content-type": "application/json",
            "X-Hub-Signature-256": _github_signature(GITHUB_SECRET, body),
        },
    )
    assert response.status_code == 202, response.text


def _sw_headers(msg_id: str, stamp: int, body: bytes, secret: str = SW_SECRET) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": "v1,bm90LXRoaXMtb25l "
        + sign_standard_webhooks(secret, msg_id, stamp, body),
    }


def test_standard_webhooks(client: TestClient, runtime: Runtime) -> None:
    add_jobs(
        runtime,
        make_job("sw", trigger={"secret": SW_SECRET, "signature": "standard_webhooks"}),
    )
    body = b'{"type": "invoice.paid"}'
    now = int(time.time())
    ok = client.post("/webhooks/sw", content=body, headers=_sw_headers("msg_1", now, body))
    assert ok.status_code == 202, ok.text
    # webhook-id is the delivery id: the same message again is the same execution.
    again = client.post("/webhooks/sw", content=body, headers=_sw_headers("msg_1", now, body))
    assert again.json()["executionId"] == ok.json()["executionId"]

    expired = client.post(
        "/webhooks/sw", content=body, headers=_sw_headers("msg_2", now - 6 * 60, body)
    )
    assert expired.status_code == 401
    assert expired.json()["code"] == "expired_timestamp"
    assert expired.json()["field"] == "webhook-timestamp"

    forged = client.post(
        "/webhooks/sw",
        content=body,
        headers=_sw_headers("msg_3", now, body, secret="whsec_b3RoZXI="),
    )
    assert forged.status_code == 401
    assert forged.json()["code"] == "invalid_signature"

    tampered = client.post(
        "/webhooks/sw", content=b'{"type": "x"}', headers=_sw_headers("msg_4", now, body)
    )
    assert tampered.status_code == 401
