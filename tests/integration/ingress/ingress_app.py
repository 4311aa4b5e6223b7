"""Helpers of the ingress API tests (a module of its own: every test folder has a `conftest`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from fastapi.testclient import TestClient

from shared import catalog
from shared.jobs import Job
from shared.runtime import Runtime
from shared.settings import Settings

MakeClient = Callable[..., TestClient]


def make_job(job_id: str = "hook", **fields: Any) -> Job:
    return Job.model_validate({"id": job_id, "webhook": {"url": "http://127.0.0.1:9/x"}, **fields})


def add_jobs(runtime: Runtime, *jobs: Job) -> None:
    catalog.apply(runtime.db, list(jobs))


def queue_length(settings: Settings) -> int:
    """Messages waiting on this test's executions queue of the Redis broker."""
    client = redis.Redis.from_url(settings.redis_url)
    try:
        ns = settings.chronos_namespace
        return int(client.llen(f"{ns}:{ns}.executions"))
    finally:
        client.close()
