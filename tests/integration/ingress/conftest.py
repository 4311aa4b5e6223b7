"""The real ingress app over the test's own Postgres database and Redis namespace, driven over
ASGI by Starlette's TestClient (no server socket, same code path)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ingress_app import MakeClient

from services.ingress.app import create_app
from shared.runtime import Runtime
from shared.settings import Settings, load_settings


@pytest.fixture
def make_client(settings: Settings) -> Iterator[MakeClient]:
    """A client of an app built with the test's settings plus `overrides` (e.g. api_token)."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        base = {
            "database_url": settings.database_url,
            "redis_url": settings.redis_url,
            "broker_url": settings.broker_url,
            "chronos_namespace": settings.chronos_namespace,
        }
        app_settings = load_settings(**{**base, **overrides})
        client = TestClient(create_app(Runtime(app_settings, db_pool_size=8), close_runtime=True))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()
