"""The Dramatiq broker and the one message Chronos sends: "run execution X".

The message carries the execution id and trace context only; everything else is read from
Postgres by the worker, so a message can be re-sent any number of times without harm.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import dramatiq
from dramatiq.middleware import Middleware

from shared.errors import UnavailableError
from shared.settings import Settings

EXECUTE_ACTOR = "execute"


def queue_name(settings: Settings) -> str:
    return f"{settings.chronos_namespace}.executions"


def make_broker(settings: Settings, middleware: list[Middleware] | None = None) -> dramatiq.Broker:
    """A broker for `BROKER_URL`. Producers pass no middleware; workers pass theirs. Every
    broker carries trace context through its messages, outermost so its span wraps the rest."""
    from shared.tracing_middleware import TracingMiddleware

    middleware = [TracingMiddleware(), *(middleware or [])]
    if settings.broker_kind == "rabbitmq":
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # Confirms make enqueue durable before we answer 202 or mark a row queued.
        broker: dramatiq.Broker = RabbitmqBroker(
            url=settings.broker_url, confirm_delivery=True, middleware=middleware
        )
    else:
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(  # type: ignore[no-untyped-call]
            url=settings.broker_url, namespace=settings.chronos_namespace, middleware=middleware
        )
    broker.declare_queue(queue_name(settings))
    return broker


class Enqueuer:
    """Sends execution messages; broker failures become UnavailableError."""

    def __init__(self, broker: dramatiq.Broker, queue: str) -> None:
        self.broker = broker
        self.queue = queue

    def message(
        self, execution_id: UUID, options: dict[str, Any] | None = None
    ) -> dramatiq.Message[Any]:
        return dramatiq.Message(
            queue_name=self.queue,
            actor_name=EXECUTE_ACTOR,
            args=(str(execution_id),),
            kwargs={},
            options=dict(options or {}),
        )

    def enqueue(
        self,
        execution_id: UUID,
        *,
        delay: timedelta | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        delay_ms = None if delay is None else max(0, int(delay.total_seconds() * 1000))
        try:
            self.broker.enqueue(self.message(execution_id, options), delay=delay_ms)
        except Exception as exc:
            # Both brokers raise their client's own connection errors; callers need one type.
            raise UnavailableError(f"broker unavailable: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self.broker.close()
