"""Auth reaches the target as configured; `${env:...}` secrets stay out of Postgres and logs."""

from __future__ import annotations

import base64
import logging

import pytest
from http_target import Target
from worker_fixtures import make_job, wait_terminal

from services.workers.process import WorkerProcess
from shared.runtime import Runtime

TOKEN = "tok-5f1c9a7e-not-in-db"
USER = "svc-user-8d2b"
PASSWORD = "pw-3e7a41c0-not-in-db"
API_KEY = "key-9b0d66f2-not-in-db"
SECRETS = (TOKEN, USER, PASSWORD, API_KEY)


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONOS_T_TOKEN", TOKEN)
    monkeypatch.setenv("CHRONOS_T_USER", USER)
    monkeypatch.setenv("CHRONOS_T_PASSWORD", PASSWORD)
    monkeypatch.setenv("CHRONOS_T_KEY", API_KEY)


def test_auth_reaches_target_and_secrets_stay_out_of_rows_and_logs(
    secret_env: None,
    runtime: Runtime,
    target: Target,
    worker: WorkerProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    auths = {
        "bearer": {"type": "bearer", "token": "${env:CHRONOS_T_TOKEN}"},
        "basic": {
            "type": "basic",
            "username": "${env:CHRONOS_T_USER}",
            "password": "${env:CHRONOS_T_PASSWORD}",
        },
        "api_key": {"type": "api_key", "api_key": "${env:CHRONOS_T_KEY}", "header": "X-Key"},
    }
    fired = {
        kind: runtime.triggers.fire(
            make_job(target.url, id=f"auth-{kind}", webhook={"auth": auth}), "manual"
        )
        for kind, auth in auths.items()
    }
    for triggered in fired.values():
        assert wait_terminal(runtime.db, triggered.execution_id)["status"] == "succeeded"

    def headers(kind: str) -> dict[str, str]:
        [request] = target.requests_for(str(fired[kind].execution_id))
        return request.headers

    assert headers("bearer")["authorization"] == f"Bearer {TOKEN}"
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert headers("basic")["authorization"] == f"Basic {basic}"
    assert headers("api_key")["x-key"] == API_KEY
    assert "authorization" not in headers("api_key")

    with runtime.db.transaction() as conn:
        dump = "\n".join(
            row["t"]
            for table in ("executions", "attempts", "jobs")
            for row in conn.execute(f"SELECT {table}::text AS t FROM {table}").fetchall()
        )
    assert "${env:CHRONOS_T_TOKEN}" in dump  # the reference is stored, as written
    for secret in SECRETS:
        assert secret not in dump
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "attempt finished" in logged
    for secret in SECRETS:
        assert secret not in logged


@pytest.mark.parametrize("broker_url", ["redis"], indirect=True)
def test_secret_that_cannot_be_sent_fails_without_revealing_it(
    monkeypatch: pytest.MonkeyPatch,
    runtime: Runtime,
    target: Target,
    worker: WorkerProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A secret copied with its line break, as `echo token | base64` or a mounted file gives it.
    monkeypatch.setenv("CHRONOS_T_TOKEN", f"{TOKEN}\n")
    caplog.set_level(logging.DEBUG)
    job = make_job(
        target.url, webhook={"auth": {"type": "bearer", "token": "${env:CHRONOS_T_TOKEN}"}}
    )
    fired = runtime.triggers.fire(job, "manual")

    row = wait_terminal(runtime.db, fired.execution_id)

    assert row["status"] == "failed"
    assert row["attempts"] == 1
    assert "Authorization" in row["error"]
    assert target.received == []
    with runtime.db.transaction() as conn:
        dump = "\n".join(
            r["t"]
            for table in ("executions", "attempts")
            for r in conn.execute(f"SELECT {table}::text AS t FROM {table}").fetchall()
        )
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "attempt finished" in logged
    assert TOKEN not in dump
    assert TOKEN not in logged
