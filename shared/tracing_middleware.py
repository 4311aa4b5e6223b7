"""Trace context through the queue: a producer span on enqueue, a consumer span per message.

The enqueue writes W3C `traceparent` into the message options (the only place a Dramatiq
message has room for it, and the one the design reserves for it), so the worker's span joins
the trace of the webhook request or cron fire that created the execution. A message that
already carries one (a retry scheduled by a worker) keeps its trace when nothing is active.

The consumer side also puts the execution id into every log record of the message's thread.
Costs nothing measurable when tracing is off: the API's no-op spans are not recorded.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware
from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from shared.broker import EXECUTE_ACTOR
from shared.logs import execution_scope

TRACEPARENT = "traceparent"
_tracer = trace.get_tracer("chronos.queue")


def current_traceparent() -> str | None:
    """The `traceparent` of the active span, or None outside any recorded trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT)


def context_from(traceparent: str | None) -> context.Context | None:
    """The context a `traceparent` value names (None for none or a malformed one)."""
    if not traceparent:
        return None
    extracted = propagate.extract({TRACEPARENT: traceparent})
    return extracted if trace.get_current_span(extracted).get_span_context().is_valid else None


class TracingMiddleware(Middleware):
    def __init__(self) -> None:
        # Enqueues and message processing are synchronous on the calling thread, so the open
        # span of each lives in a thread-local between the before and after hooks.
        self._local = threading.local()

    def before_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int
    ) -> None:
        self._end_producer(failed=True)
        active = trace.get_current_span().get_span_context().is_valid
        parent = None if active else context_from(message.options.get(TRACEPARENT))
        span = _tracer.start_span(
            f"{message.queue_name} publish",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes=_attributes(message),
        )
        if delay:
            span.set_attribute("chronos.delay_ms", delay)
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        if TRACEPARENT in carrier:
            message.options[TRACEPARENT] = carrier[TRACEPARENT]
        self._local.producer = span

    def after_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int
    ) -> None:
        self._end_producer(failed=False)

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        stack = ExitStack()
        span = _tracer.start_span(
            f"{message.queue_name} process",
            context=context_from(message.options.get(TRACEPARENT)),
            kind=SpanKind.CONSUMER,
            attributes=_attributes(message),
        )
        stack.enter_context(trace.use_span(span, end_on_exit=True))
        if message.actor_name == EXECUTE_ACTOR and message.args:
            stack.enter_context(execution_scope(execution_id=str(message.args[0])))
        self._local.consumer = (stack, span)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        opened = getattr(self._local, "consumer", None)
        if opened is None:
            return
        self._local.consumer = None
        stack, span = opened
        if exception is not None:
            span.record_exception(exception)
            span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}: {exception}"))
        stack.close()

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self.after_process_message(broker, message)

    def _end_producer(self, *, failed: bool) -> None:
        span = getattr(self._local, "producer", None)
        if span is None:
            return
        self._local.producer = None
        if failed:
            # The previous enqueue on this thread raised before its after hook ran.
            span.set_status(Status(StatusCode.ERROR, "enqueue failed"))
        span.end()


def _attributes(message: dramatiq.Message[Any] | MessageProxy) -> dict[str, str]:
    attributes = {
        "messaging.system": "dramatiq",
        "messaging.destination.name": message.queue_name,
        "messaging.message.id": message.message_id,
    }
    if message.actor_name == EXECUTE_ACTOR and message.args:
        attributes["chronos.execution_id"] = str(message.args[0])
    return attributes
