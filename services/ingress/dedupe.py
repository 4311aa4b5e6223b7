"""Redelivered webhooks: remember, per job and delivery id, which execution the first one made.

Redis is only the fast path. The durable guard is the executions table's UNIQUE idempotency
key (`webhook:<job>:<delivery>`): a redelivery that misses Redis (first delivery still in flight,
key expired, Redis down) reaches the trigger path, whose insert loses and returns the id of the
execution that won. So concurrent copies of one delivery all answer with the same id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from uuid import UUID

import redis

from services.ingress.errors import ApiError
from shared.settings import Settings

log = logging.getLogger(__name__)

# Where senders put the id of a delivery, in order of preference.
DELIVERY_HEADERS = ("x-github-delivery", "idempotency-key", "webhook-id")
MAX_DELIVERY_ID = 200


def delivery_id(headers: Mapping[str, str]) -> str | None:
    for name in DELIVERY_HEADERS:
        value = headers.get(name)
        if value is not None:
            value = value.strip()
            if not value or len(value) > MAX_DELIVERY_ID:
                raise ApiError(
                    400,
                    "invalid_delivery_id",
                    f"{name} must be 1 to {MAX_DELIVERY_ID} characters",
                    field=name,
                )
            return value
    return None


class Dedupe:
    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.window = timedelta(hours=settings.dedupe_window_hours)

    def _key(self, job_id: str, delivery: str) -> str:
        return self.settings.key("dedupe", job_id, delivery)

    def seen(self, job_id: str, delivery: str) -> UUID | None:
        """The execution of an earlier copy of this delivery, if Redis remembers one."""
        try:
            value = self.client.get(self._key(job_id, delivery))
        except redis.RedisError as exc:
            log.warning("dedupe lookup failed", extra={"job_id": job_id, "error": str(exc)})
            return None
        return UUID(value.decode()) if isinstance(value, bytes) else None

    def remember(self, job_id: str, delivery: str, execution_id: UUID) -> None:
        try:
            # NX: the first copy's id stays; a later writer holds the same id anyway.
            self.client.set(self._key(job_id, delivery), str(execution_id), nx=True, ex=self.window)
        except redis.RedisError as exc:
            log.warning("dedupe store failed", extra={"job_id": job_id, "error": str(exc)})
