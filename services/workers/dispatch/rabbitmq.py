"""RabbitMQ delivery with pika: one connection and confirm-mode channel per worker thread.

pika's BlockingConnection is not thread-safe, and a lock around one shared channel would make
every worker thread of a process wait for the others' confirms; so each worker thread keeps its
own connection per broker URL, reused for all its messages. Before a reused connection
publishes, pending frames are read: a connection the server closed (restart, heartbeat,
`rabbitmqctl close_connection`) is replaced there, before anything is sent.

Messages carry `message_id` = the execution id (the consumer's dedupe handle), the id headers,
`content_type: application/json` and delivery mode 2 when `persistent`. With publisher confirms
(the default) success is the broker's ack; a nack, or an unroutable message published
`mandatory`, is a retryable failure (no queue is bound *now*); a missing exchange or a refused
login fails permanently. Without confirms, success is the message written to the socket.
pika's errors are translated in `_amqp_errors` only.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from services.workers.dispatch.base import Delivery, Outcome
from services.workers.dispatch.message import ack_text, body, wait_limit
from shared.errors import (
    DispatchError,
    DispatchTimeoutError,
    PermanentDispatchError,
    RetryableDispatchError,
)
from shared.jobs import RabbitMQTarget
from shared.secrets import resolve
from shared.settings import Settings

# AMQP reply codes that no retry can cure: not found, access refused, precondition failed,
# not allowed (e.g. the vhost).
_PERMANENT_CODES = frozenset({403, 404, 406, 530})
_PERSISTENT, _TRANSIENT = 2, 1


def create(settings: Settings) -> RabbitMQDispatcher:
    return RabbitMQDispatcher(settings)


@dataclass
class _Link:
    connection: pika.BlockingConnection
    channel: BlockingChannel | None = None


@dataclass
class _ThreadLinks:
    links: dict[tuple[str, bool], _Link] = field(default_factory=dict)


class RabbitMQDispatcher:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._local = threading.local()
        # Every connection of every thread, so that close() can reach them all.
        self._opened: list[pika.BlockingConnection] = []
        self._lock = threading.Lock()

    def dispatch(self, delivery: Delivery) -> Outcome:
        target = delivery.job.rabbitmq
        if target is None:
            raise PermanentDispatchError(f"job {delivery.job.id!r} has no rabbitmq target")
        url = resolve(target.url)
        confirm = target.confirm if target.confirm is not None else self._settings.rabbitmq_confirm
        limit = wait_limit(delivery, target.timeout, self._settings.rabbitmq_timeout)
        properties = pika.BasicProperties(
            message_id=str(delivery.execution_id),
            content_type="application/json",
            delivery_mode=_PERSISTENT if target.persistent else _TRANSIENT,
            headers=delivery.id_headers(),
            app_id="chronos",
        )
        with _amqp_errors(target, limit):
            link = self._link(url, confirm, limit)
            try:
                channel = _channel(link, confirm)
                channel.basic_publish(
                    target.exchange,
                    target.routing_key,
                    body(delivery),
                    properties,
                    mandatory=target.mandatory,
                )
            except pika.exceptions.ChannelClosed:
                # The broker closes the channel on e.g. a missing exchange; the connection lives.
                link.channel = None
                raise
            except pika.exceptions.AMQPConnectionError:
                self._drop(url, confirm)
                raise
        return Outcome(response=ack_text(confirmed=confirm))

    def _link(self, url: str, confirm: bool, limit: timedelta) -> _Link:
        links = self._thread_links()
        link = links.get((url, confirm))
        if link is not None:
            try:
                # Reads what the server sent meanwhile: raises if it closed the connection.
                link.connection.process_data_events(0)
            except pika.exceptions.AMQPError:
                self._drop(url, confirm)
                link = None
            else:
                if not link.connection.is_open:
                    self._drop(url, confirm)
                    link = None
        if link is None:
            link = _Link(_connect(url, limit))
            with self._lock:
                self._opened.append(link.connection)
            links[(url, confirm)] = link
        return link

    def _thread_links(self) -> dict[tuple[str, bool], _Link]:
        state: _ThreadLinks | None = getattr(self._local, "state", None)
        if state is None:
            state = self._local.state = _ThreadLinks()
        return state.links

    def _drop(self, url: str, confirm: bool) -> None:
        link = self._thread_links().pop((url, confirm), None)
        if link is None:
            return
        with self._lock:
            with contextlib.suppress(ValueError):
                self._opened.remove(link.connection)
        _close_quietly(link.connection)

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            _close_quietly(connection)


def _connect(url: str, limit: timedelta) -> pika.BlockingConnection:
    parameters = pika.URLParameters(url)
    seconds = limit.total_seconds()
    parameters.socket_timeout = seconds
    parameters.stack_timeout = seconds
    parameters.blocked_connection_timeout = seconds
    parameters.connection_attempts = 1
    parameters.client_properties = {"connection_name": "chronos-worker"}
    return pika.BlockingConnection(parameters)


def _channel(link: _Link, confirm: bool) -> BlockingChannel:
    # Without confirms the broker closes a channel (e.g. over a missing exchange) after the
    # publish has returned; reusing it would fail every later message of this thread.
    if link.channel is not None and link.channel.is_open:
        return link.channel
    channel = link.connection.channel()
    if confirm:
        channel.confirm_delivery()
    link.channel = channel
    return channel


def _close_quietly(connection: pika.BlockingConnection) -> None:
    # Closing a connection the server already dropped raises; there is nothing left to release.
    with contextlib.suppress(Exception):
        if connection.is_open:
            connection.close()


@contextmanager
def _amqp_errors(target: RabbitMQTarget, limit: timedelta) -> Iterator[None]:
    """The one place pika exceptions become dispatch errors."""
    where = f"rabbitmq exchange {target.exchange or '(default)'!r} key {target.routing_key!r}"
    try:
        yield
    except DispatchError:
        raise
    except pika.exceptions.UnroutableError as exc:
        raise RetryableDispatchError(
            f"{where}: unroutable, no queue is bound for the message (mandatory)"
        ) from exc
    except pika.exceptions.NackError as exc:
        raise RetryableDispatchError(f"{where}: the broker refused the message (nack)") from exc
    except (pika.exceptions.ChannelClosed, pika.exceptions.ConnectionClosed) as exc:
        code, text = exc.reply_code, exc.reply_text
        error = PermanentDispatchError if code in _PERMANENT_CODES else RetryableDispatchError
        raise error(f"{where}: closed by the broker: {code} {text}", status_code=code) from exc
    except (
        pika.exceptions.ProbableAuthenticationError,
        pika.exceptions.ProbableAccessDeniedError,
        pika.exceptions.AuthenticationError,
        pika.exceptions.IncompatibleProtocolError,
    ) as exc:
        raise PermanentDispatchError(f"{where}: {type(exc).__name__}: {exc}") from exc
    except (pika.exceptions.ConnectionBlockedTimeout, TimeoutError) as exc:
        raise DispatchTimeoutError(
            f"{where}: no confirm within {limit.total_seconds():g}s"
        ) from exc
    except (pika.exceptions.AMQPError, OSError) as exc:
        raise RetryableDispatchError(f"{where}: {_describe(exc)}") from exc
    except ValueError as exc:
        # pika rejects a malformed URL or property value with ValueError.
        raise PermanentDispatchError(f"{where}: {exc}") from exc


def _describe(exc: Exception) -> str:
    # pika's connection errors wrap the socket error in args and print as an empty string.
    detail = str(exc) or "; ".join(repr(arg) for arg in exc.args) or "connection failed"
    return f"{type(exc).__name__}: {detail}"
