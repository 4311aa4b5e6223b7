import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import psycopg

from shared.migrate import discover, migrate


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
