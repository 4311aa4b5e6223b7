import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from shared.migrate import _ADVISORY_LOCK_ID, discover, migrate

LOCK_WAIT_TIMEOUT_S = 30


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def test_migrate_creates_schema_then_is_a_no_op(empty_database: str) -> None:
    applied = migrate(empty_database)
    assert applied == [m.version for m in discover()]
    assert {"jobs", "executions", "attempts", "schema_migrations"} <= _tables(empty_database)
    assert migrate(empty_database) == []


def test_two_concurrent_migrations_both_succeed(empty_database: str) -> None:
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: migrate(empty_database), range(2)))
    assert sorted(len(r) for r in results) == [0, len(discover())]


def _wait_for_lock_waiters(url: str, count: int) -> None:
    deadline = time.monotonic() + LOCK_WAIT_TIMEOUT_S
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                " WHERE l.locktype = 'advisory' AND NOT l.granted"
                " AND d.datname = current_database()"
            ).fetchone()
            if row is not None and row[0] >= count:
                return
            time.sleep(0.05)
    pytest.fail(f"{count} `chronos migrate` runs did not reach the migration lock")


def test_two_concurrent_cli_migrations_both_succeed(empty_database: str) -> None:
    env = {"DATABASE_URL": empty_database, "PATH": ""}
    # Holding the lock both runs take makes them certainly run at once when it is freed.
    with psycopg.connect(empty_database, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_ID,))
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "services.cli", "migrate"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        _wait_for_lock_waiters(empty_database, 2)
        holder.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_ID,))
    outputs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    first, second = sorted(out.strip() for out, _ in outputs)
    assert first.startswith("applied 0001_jobs") and second == "schema is up to date", outputs
    assert {"jobs", "executions", "attempts"} <= _tables(empty_database)
    assert migrate(empty_database) == []


def test_cli_migrate_twice(empty_database: str) -> None:
    env = {"DATABASE_URL": empty_database, "PATH": ""}
    first = subprocess.run(
        [sys.executable, "-m", "services.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert first.stdout.startswith("applied 0001_jobs")
    second = subprocess.run(
        [sys.executable, "-m", "services.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert second.stdout.strip() == "schema is up to date"


def test_idempotency_key_is_unique(database: str) -> None:
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'executions'"
        ).fetchall()
    assert any("UNIQUE" in r[0] and "idempotency_key" in r[0] for r in rows)
