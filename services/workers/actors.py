"""The one Dramatiq actor, kept thin: it turns a message into a `Runner.run` call.

Dramatiq's own retrying is limited to errors that mean "the infrastructure cannot take the
change now" (Postgres or the broker down): the runner owns delivery retries, with the job's
policy, and records each one.
"""

from __future__ import annotations

from uuid import UUID

import dramatiq
from dramatiq.middleware import CurrentMessage, Middleware, Retries

from services.workers.runner import Runner
from shared.broker import EXECUTE_ACTOR, queue_name
from shared.errors import UnavailableError
from shared.settings import Settings

# Re-deliveries of a message whose state change Postgres or the broker refused, 1 s to 5 min
# apart: enough to ride out a database failover, bounded so a lost cause is dead-lettered.
INFRA_RETRIES = 30
INFRA_MIN_BACKOFF_MS = 1_000
INFRA_MAX_BACKOFF_MS = 300_000


def _infra_only(retries: int, exc: BaseException) -> bool:
    return isinstance(exc, UnavailableError) and retries < INFRA_RETRIES


def worker_middleware() -> list[Middleware]:
    return [
        CurrentMessage(),
        Retries(
            max_retries=0,
            retry_when=_infra_only,
            min_backoff=INFRA_MIN_BACKOFF_MS,
            max_backoff=INFRA_MAX_BACKOFF_MS,
        ),
    ]


def declare_execute(
    broker: dramatiq.Broker, settings: Settings, runner: Runner
) -> dramatiq.Actor[[str], None]:
    """Register the `execute` actor on `broker`'s executions queue."""

    def execute(execution_id: str) -> None:
        message = CurrentMessage.get_current_message()
        traceparent = message.options.get("traceparent") if message is not None else None
        runner.run(UUID(execution_id), traceparent)

    decorate = dramatiq.actor(
        actor_name=EXECUTE_ACTOR, queue_name=queue_name(settings), broker=broker
    )
    return decorate(execute)
