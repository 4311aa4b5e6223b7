"""The one contract every protocol dispatcher fulfils.

A dispatcher delivers one attempt of one execution to the job's target and reports how it went:

- It returns an `Outcome` when the target accepted the delivery: an HTTP or gRPC response that
  counts as success, or the broker's acknowledgement (Kafka acks, NATS JetStream ack or request
  reply, RabbitMQ publisher confirm).
- It raises `RetryableDispatchError` (or its subclass `DispatchTimeoutError`) for failures that
  a later attempt may cure, and `PermanentDispatchError` for those it cannot. No library exception
  leaves a dispatcher: each module maps its client's errors at one boundary, chained `from exc`.
- It holds long-lived clients (connection pools, producers, channels) for the life of the worker
  process, re-creating them after the server restarts; `close()` releases them.
- It resolves secret references (`shared.secrets.resolve`) at dispatch time and never logs them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from shared.jobs import Job


@dataclass(frozen=True)
class Delivery:
    """Everything one attempt needs. Built by the runner from the execution row."""

    execution_id: UUID
    job: Job
    attempt: int
    scheduled_at: datetime
    payload: Any
    timeout: timedelta
    traceparent: str | None = None
    # Set by another thread to abort the attempt (cancel, or `replace` concurrency policy).
    cancelled: threading.Event = field(default_factory=threading.Event, compare=False)

    def id_headers(self) -> dict[str, str]:
        """The ids every protocol carries: HTTP headers, message headers or gRPC metadata."""
        headers = {
            "X-Chronos-Job-ID": self.job.id,
            "X-Chronos-Execution-ID": str(self.execution_id),
            "X-Chronos-Scheduled-Time": self.scheduled_at.astimezone(UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
            "X-Chronos-Attempt": str(self.attempt),
        }
        if self.traceparent:
            headers["traceparent"] = self.traceparent
        return headers


@dataclass(frozen=True)
class Outcome:
    """A successful attempt. `result` is kept as the execution's result (JSON)."""

    status_code: int | None = None
    response: str | None = None
    result: Any = None


class Dispatcher(Protocol):
    def dispatch(self, delivery: Delivery) -> Outcome:
        """Deliver one attempt; return on success, raise a DispatchError subclass otherwise."""
        ...

    def close(self) -> None:
        """Release long-lived clients. Called once when the worker process stops."""
        ...
