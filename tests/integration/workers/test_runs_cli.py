"""`chronos jobs trigger|pause` and `chronos runs list|get` over executions a real worker ran."""

from __future__ import annotations

import json
import subprocess
import sys
from uuid import UUID, uuid4

import pytest
from http_target import Reply, Target
from worker_fixtures import consuming, make_job, wait_terminal

from services.workers.process import WorkerProcess
from shared import catalog
from shared.runtime import Runtime
from shared.settings import Settings

# The CLI reads what the pipeline wrote; the broker under it is the delivery tests' concern.
pytestmark = pytest.mark.parametrize("broker_url", ["redis"], indirect=True)


def chronos(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_trigger_then_list_and_get_runs_with_their_attempts(
    runtime: Runtime, settings_env: dict[str, str], target: Target, worker: WorkerProcess
) -> None:
    target.script = lambda n, r: Reply(404, "gone") if r.path == "/gone" else Reply(200)
    catalog.apply(
        runtime.db,
        [
            make_job(target.url, id="fine"),
            make_job(target.url.replace("/hook", "/gone"), id="broken"),
        ],
    )

    fine = UUID(ok(chronos(settings_env, "jobs", "trigger", "fine", "--payload", '{"n": 1}')))
    broken = [UUID(ok(chronos(settings_env, "jobs", "trigger", "broken"))) for _ in range(2)]

    assert wait_terminal(runtime.db, fine)["status"] == "succeeded"
    assert [wait_terminal(runtime.db, b)["status"] for b in broken] == ["failed", "failed"]
    [request] = target.requests_for(str(fine))
    assert json.loads(request.body) == {"n": 1}

    def listed(*args: str) -> list[str]:
        return [r["id"] for r in json.loads(ok(chronos(settings_env, "runs", "list", *args)))]

    # Dead letters: the failed executions, newest first.
    assert listed("--status", "failed", "--json") == [str(b) for b in reversed(broken)]
    assert listed("--job", "fine", "--json") == [str(fine)]
    assert listed("--limit", "1", "--json") == [str(broken[-1])]
    table = ok(chronos(settings_env, "runs", "list")).splitlines()
    assert table[0].split() == ["ID", "JOB", "TRIGGER", "STATUS", "ATTEMPTS", "SCHEDULED"]
    assert sorted(line.split()[3] for line in table[1:]) == ["failed", "failed", "succeeded"]

    got = json.loads(ok(chronos(settings_env, "runs", "get", str(broken[0]), "--json")))
    assert (got["status"], got["attempts"]) == ("failed", 1)
    [attempt] = got["attempts_detail"]
    assert (attempt["attempt"], attempt["outcome"], attempt["status_code"]) == (1, "failed", 404)
    assert attempt["response"] == "gone"
    shown = ok(chronos(settings_env, "runs", "get", str(fine)))
    assert f"id             {fine}" in shown.splitlines()
    assert "status         succeeded" in shown.splitlines()
    assert any(line.split()[:3] == ["1", "succeeded", "200"] for line in shown.splitlines())

    missing = chronos(settings_env, "runs", "get", str(uuid4()))
    assert missing.returncode == 1
    assert "not found" in missing.stderr


def test_executions_queued_before_a_pause_still_run(
    runtime: Runtime, settings: Settings, settings_env: dict[str, str], target: Target
) -> None:
    catalog.apply(runtime.db, [make_job(target.url, id="paused")])
    queued = UUID(ok(chronos(settings_env, "jobs", "trigger", "paused")))
    ok(chronos(settings_env, "jobs", "pause", "paused"))

    with consuming(settings):
        row = wait_terminal(runtime.db, queued)

    assert row["status"] == "succeeded"
    assert catalog.get_job(runtime.db, "paused").paused
    assert len(target.requests_for(str(queued))) == 1
