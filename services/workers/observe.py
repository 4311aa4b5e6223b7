"""What the runner tells operators about each attempt: its span, its metrics, its Sentry event.

The dispatch span is the parent of the protocol client's own span (httpx's, when instrumented)
and its context is the `traceparent` the target receives, so the target joins the trace of the
webhook or cron fire that created the execution.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.workers.dispatch.base import Delivery
from shared import metrics
from shared.logs import execution_scope
from shared.sentry import report_failed_execution
from shared.store.executions import AttemptEnd, ClaimRow
from shared.tracing_middleware import current_traceparent

FINAL_STATUSES = frozenset({"succeeded", "failed", "timed_out", "skipped", "cancelled"})

_tracer = trace.get_tracer("chronos.workers")


@contextmanager
def dispatch_span(delivery: Delivery) -> Iterator[Delivery]:
    """Around one dispatch: a span, and log records that carry the attempt's ids. Yields the
    delivery to send, carrying this span's `traceparent` (the message's when not recording)."""
    kind = delivery.job.target_kind
    ids: dict[str, str | int] = {
        "job_id": delivery.job.id,
        "execution_id": str(delivery.execution_id),
        "attempt": delivery.attempt,
    }
    with (
        execution_scope(**ids),
        _tracer.start_as_current_span(
            f"dispatch {kind}",
            kind=SpanKind.INTERNAL,
            attributes={f"chronos.{k}": v for k, v in ids.items()} | {"chronos.target": kind},
        ) as span,
    ):
        traceparent = current_traceparent() or delivery.traceparent
        try:
            yield dataclasses.replace(delivery, traceparent=traceparent)
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


def attempt_finished(row: ClaimRow, end: AttemptEnd, status: str | None, now: datetime) -> None:
    """Count the attempt and, if the execution reached a final state, the execution."""
    metrics.ATTEMPTS.labels(end.outcome).inc()
    if status is None or status not in FINAL_STATUSES:
        return
    execution_finished(row, status, now)
    if status == "failed":
        report_failed_execution(
            row.job_id, str(row.id), end.attempt, end.error_message, trigger=row.trigger
        )


def execution_finished(row: ClaimRow, status: str, now: datetime) -> None:
    metrics.EXECUTIONS.labels(row.job_id, status, row.trigger).inc()
    metrics.EXECUTION_DURATION.observe(max(0.0, (now - row.scheduled_at).total_seconds()))
