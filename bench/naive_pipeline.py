"""The baseline of bench/pipeline.py: the pipeline anyone would write first.

A Dramatiq actor that POSTs with sync httpx and records the result with one autocommit INSERT
per job; no claims, no attempts, no retries. Loaded by the Dramatiq CLI with the same process
and thread counts as `chronos worker`; configured by the NAIVE_* variables bench/pipeline.py sets.
"""

from __future__ import annotations

import os
import threading

import dramatiq
import httpx
import psycopg
from dramatiq.brokers.redis import RedisBroker

_broker = RedisBroker(url=os.environ["NAIVE_REDIS_URL"], namespace=os.environ["NAIVE_NAMESPACE"])
dramatiq.set_broker(_broker)
_client = httpx.Client()
_local = threading.local()


def _conn() -> psycopg.Connection[tuple[object, ...]]:
    conn: psycopg.Connection[tuple[object, ...]] | None = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = psycopg.connect(os.environ["NAIVE_DATABASE_URL"], autocommit=True)
    return conn


@dramatiq.actor(queue_name=os.environ["NAIVE_QUEUE"], max_retries=0)
def deliver(job_id: str) -> None:
    response = _client.post(os.environ["NAIVE_TARGET"], json={"job": job_id})
    _conn().execute(
        "INSERT INTO naive_results (job_id, status_code) VALUES (%s, %s)",
        (job_id, response.status_code),
    )
