"""`chronos runs cancel|replay` and `chronos jobs pause|resume` against real Postgres and Redis."""

from __future__ import annotations

import subprocess
import sys
import time
from uuid import UUID, uuid4

import pytest
import redis

from shared import catalog
from shared.control import cancel_channel
from shared.jobs import Job
from shared.runtime import Runtime
from shared.store import executions
from tests.conftest import REDIS_URL


def chronos(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True
    )


JOB = Job.model_validate(
    {"id": "ping", "webhook": {"url": "http://127.0.0.1:9/"}, "payload": {"hello": "world"}}
)


@pytest.fixture
def queued(runtime: Runtime) -> UUID:
    catalog.apply(runtime.db, [JOB])
    return runtime.triggers.fire(JOB, "manual", payload={"n": 7}).execution_id


def _row(runtime: Runtime, execution_id: UUID) -> dict[str, object]:
    with runtime.db.transaction() as conn:
        row = executions.get(conn, execution_id)
    assert row is not None
    return row


def test_cancel_a_queued_execution_then_replay_it(
    runtime: Runtime, settings_env: dict[str, str], queued: UUID
) -> None:
    done = chronos(settings_env, "runs", "cancel", str(queued))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"cancelled {queued}"
    row = _row(runtime, queued)
    assert row["status"] == "cancelled"
    assert row["finished_at"] is not None
    assert row["status_reason"] == "cancelled on request"

    again = chronos(settings_env, "runs", "cancel", str(queued))
    assert again.returncode == 1
    assert "already ended cancelled" in again.stderr

    replayed = chronos(settings_env, "runs", "replay", str(queued))
    assert replayed.returncode == 0, replayed.stderr
    new = _row(runtime, UUID(replayed.stdout.strip()))
    assert new["trigger"] == "replay"
    assert new["replay_of"] == queued
    assert new["payload"] == {"n": 7}
    assert new["job_snapshot"] == row["job_snapshot"]
    assert new["status"] == "queued"


def test_replay_of_a_live_execution_and_unknown_ids_are_refused(
    settings_env: dict[str, str], queued: UUID
) -> None:
    live = chronos(settings_env, "runs", "replay", str(queued))
    assert live.returncode == 1
    assert "still queued" in live.stderr
    missing = chronos(settings_env, "runs", "cancel", str(uuid4()))
    assert missing.returncode == 1
    assert "not found" in missing.stderr
    bad = chronos(settings_env, "runs", "cancel", "nope")
    assert bad.returncode == 2
    assert "not a valid UUID" in bad.stderr


def test_cancel_of_a_running_execution_is_broadcast_to_workers(
    runtime: Runtime, settings_env: dict[str, str], queued: UUID
) -> None:
    with runtime.db.transaction() as conn:
        conn.execute("UPDATE executions SET status = 'running' WHERE id = %s", (queued,))
    client = redis.Redis.from_url(REDIS_URL)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(cancel_channel(runtime.settings))
    try:
        done = chronos(settings_env, "runs", "cancel", str(queued))
        assert done.returncode == 0, done.stderr
        assert "cancel requested" in done.stdout
        received = []
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.5)
            if message is not None:
                received.append(message["data"])
        assert received == [str(queued).encode()]
    finally:
        pubsub.close()
        client.close()
    row = _row(runtime, queued)
    # The worker running it records the end; until then it is running with the request noted.
    assert row["status"] == "running"
    assert row["cancel_requested"] is True


def test_pause_and_resume(runtime: Runtime, settings_env: dict[str, str]) -> None:
    catalog.apply(runtime.db, [JOB])
    paused = chronos(settings_env, "jobs", "pause", "ping")
    assert paused.returncode == 0, paused.stderr
    assert catalog.get_job(runtime.db, "ping").paused
    resumed = chronos(settings_env, "jobs", "resume", "ping")
    assert resumed.returncode == 0, resumed.stderr
    assert not catalog.get_job(runtime.db, "ping").paused
    missing = chronos(settings_env, "jobs", "pause", "ghost")
    assert missing.returncode == 1
    assert "job 'ghost' not found" in missing.stderr
