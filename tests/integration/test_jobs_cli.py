"""`chronos jobs ...` against a real Postgres, through the real console entry point."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import yaml

from shared.jobs import Job

FIXTURES = Path(__file__).parent.parent / "fixtures"


def chronos(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True
    )


@pytest.fixture
def env(settings_env: dict[str, str]) -> dict[str, str]:
    return settings_env


def _job_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM jobs").fetchone()
    assert row is not None
    return int(row[0])


def test_apply_list_round_trip_and_reapply(env: dict[str, str], database: str) -> None:
    applied = chronos(env, "jobs", "apply", "-f", str(FIXTURES / "valid_jobs.yaml"))
    assert applied.returncode == 0, applied.stderr
    assert "7 created" in applied.stdout

    listed = chronos(env, "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    stored = {j["id"]: j for j in json.loads(listed.stdout)}
    source = yaml.safe_load((FIXTURES / "valid_jobs.yaml").read_text())["jobs"]
    assert set(stored) == {j["id"] for j in source}
    for raw in source:
        shown = {
            k: v
            for k, v in stored[raw["id"]].items()
            if k not in ("paused", "version", "created_at", "updated_at")
        }
        assert Job.model_validate(shown) == Job.model_validate(raw)
        # Every field the user wrote comes back, in its canonical form.
        assert set(raw) <= set(shown)

    again = chronos(env, "jobs", "apply", "-f", str(FIXTURES / "valid_jobs.yaml"))
    assert again.returncode == 0
    assert again.stdout.strip() == "no changes (7 jobs unchanged)"


def test_invalid_file_writes_nothing(env: dict[str, str], database: str) -> None:
    result = chronos(env, "jobs", "apply", "-f", str(FIXTURES / "ten_mistakes.yaml"))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: job ")]
    assert len(errors) == 10
    assert "nothing was written" in result.stderr
    assert _job_count(database) == 0


def test_validate_exit_codes(env: dict[str, str]) -> None:
    assert chronos(env, "jobs", "validate", "-f", str(FIXTURES / "valid_jobs.yaml")).returncode == 0
    bad = chronos(env, "jobs", "validate", "-f", str(FIXTURES / "ten_mistakes.yaml"))
    assert bad.returncode == 1 and bad.stderr.count("error: job ") == 10
    missing = chronos(env, "jobs", "validate", "-f", "/nonexistent.yaml")
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_prune_get_delete(env: dict[str, str], database: str, tmp_path: Path) -> None:
    chronos(env, "jobs", "apply", "-f", str(FIXTURES / "valid_jobs.yaml"))
    only_one = tmp_path / "one.yaml"
    only_one.write_text("jobs:\n  - id: rabbit\n    rabbitmq: {url: 'amqp://h/', routing_key: r}\n")
    pruned = chronos(env, "jobs", "apply", "--prune", "-f", str(only_one))
    assert pruned.returncode == 0 and "6 deleted" in pruned.stdout and "1 updated" in pruned.stdout
    assert _job_count(database) == 1

    got = chronos(env, "jobs", "get", "rabbit", "--json")
    assert json.loads(got.stdout)["rabbitmq"]["routing_key"] == "r"
    assert chronos(env, "jobs", "delete", "rabbit").returncode == 0
    gone = chronos(env, "jobs", "get", "rabbit")
    assert gone.returncode == 1 and gone.stderr.strip() == "error: job 'rabbit' not found"


def test_bad_setting_fails_naming_the_variable(env: dict[str, str]) -> None:
    result = chronos({**env, "DATABASE_URL": "mysql://nope"}, "jobs", "list")
    assert result.returncode == 2
    assert result.stderr.startswith("error: configuration: DATABASE_URL:")


def test_schema_command_prints_json_schema(env: dict[str, str]) -> None:
    result = chronos(env, "jobs", "schema")
    assert json.loads(result.stdout)["title"] == "Chronos jobs file"


def test_unreachable_postgres_is_one_line_and_exit_1(env: dict[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    down = {**env, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed}/chronos"}
    listed = chronos(down, "jobs", "list")
    assert listed.returncode == 1
    assert listed.stdout == ""
    assert listed.stderr.splitlines() == [
        "error: Postgres unavailable: no connection within timeout"
    ]
