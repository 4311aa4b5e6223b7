"""Fixtures that give each test its own Postgres database and Redis namespace on the real servers.

A template database is migrated once per session; each test clones it (fast) and drops it after,
so tests run in any order and never see each other's rows.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from shared.migrate import migrate
from shared.runtime import Runtime
from shared.settings import Settings, load_settings

ADMIN_URL = os.environ.get(
    "CHRONOS_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("CHRONOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("CHRONOS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def database_url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def _admin(statement: sql.Composable) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement)


def create_database(name: str, template: str | None = None) -> str:
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    _admin(query)
    return database_url(name)


def drop_database(name: str) -> None:
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def template_db() -> Iterator[str]:
    name = f"chronos_tpl_{secrets.token_hex(4)}"
    url = create_database(name)
    migrate(url)
    yield name
    drop_database(name)


@pytest.fixture
def database(template_db: str) -> Iterator[str]:
    """URL of a fresh, migrated database for this test only."""
    name = f"chronos_test_{secrets.token_hex(6)}"
    url = create_database(name, template=template_db)
    yield url
    drop_database(name)


@pytest.fixture
def empty_database() -> Iterator[str]:
    name = f"chronos_test_{secrets.token_hex(6)}"
    url = create_database(name)
    yield url
    drop_database(name)


@pytest.fixture
def namespace() -> Iterator[str]:
    """A Redis key prefix and queue-name prefix owned by this test; its keys are removed after."""
    import redis

    ns = f"t{secrets.token_hex(5)}"
    yield ns
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{ns}*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(params=["redis"])
def broker_url(request: pytest.FixtureRequest) -> str:
    return REDIS_URL if request.param == "redis" else AMQP_URL


@pytest.fixture
def settings(database: str, namespace: str, broker_url: str) -> Settings:
    return load_settings(
        database_url=database,
        redis_url=REDIS_URL,
        broker_url=broker_url,
        chronos_namespace=namespace,
    )


@pytest.fixture
def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a child process needs to see the same settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CHRONOS_", "DATABASE_", "BROKER_"))
    }
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        BROKER_URL=settings.broker_url,
        CHRONOS_NAMESPACE=settings.chronos_namespace,
    )
    return env


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime(settings, db_pool_size=4)
    yield rt
    rt.close()
