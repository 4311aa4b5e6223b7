"""RabbitMQ dispatch with publisher confirms against the real broker, read back from a queue."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
from broker_servers import AMQP, delivery, private_rabbitmq, wait_until

from services.workers.dispatch.base import Delivery
from services.workers.dispatch.rabbitmq import RabbitMQDispatcher
from shared.errors import PermanentDispatchError, RetryableDispatchError
from shared.settings import load_settings


@pytest.fixture
def dispatcher() -> Iterator[RabbitMQDispatcher]:
    made = RabbitMQDispatcher(load_settings())
    yield made
    made.close()


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"chronos-test-{secrets.token_hex(5)}"
    connection = pika.BlockingConnection(pika.URLParameters(AMQP))
    connection.channel().queue_declare(name)
    yield name
    connection.channel().queue_delete(name)
    connection.close()


def rabbitmq_job(url: str = AMQP, **fields: Any) -> dict[str, Any]:
    return {"rabbitmq": {"url": url, **fields}}


def get(queue: str, url: str = AMQP) -> tuple[pika.BasicProperties, bytes] | None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        _, properties, body = connection.channel().basic_get(queue, auto_ack=True)
    finally:
        connection.close()
    return None if properties is None else (properties, body)


def test_message_carries_payload_message_id_and_headers(
    dispatcher: RabbitMQDispatcher, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHRONOS_TEST_AMQP", AMQP)
    attempt = delivery(rabbitmq_job(url="${env:CHRONOS_TEST_AMQP}", routing_key=queue))

    dispatcher.dispatch(attempt)

    message = get(queue)
    assert message is not None
    properties, body = message
    assert body == b'{"order":42}'
    assert properties.message_id == str(attempt.execution_id)
    assert properties.delivery_mode == 2
    assert properties.content_type == "application/json"
    assert properties.headers["X-Chronos-Execution-ID"] == str(attempt.execution_id)
    assert properties.headers["X-Chronos-Scheduled-Time"] == "2026-01-02T03:04:05Z"
    assert properties.headers["traceparent"] == attempt.traceparent


def test_missing_exchange_fails_permanently_and_the_channel_recovers(
    dispatcher: RabbitMQDispatcher, queue: str
) -> None:
    missing = f"chronos-missing-{secrets.token_hex(4)}"
    with pytest.raises(PermanentDispatchError, match=f"404 NOT_FOUND - no exchange '{missing}'"):
        dispatcher.dispatch(delivery(rabbitmq_job(exchange=missing, routing_key=queue)))

    dispatcher.dispatch(delivery(rabbitmq_job(routing_key=queue)))
    assert get(queue) is not None


def test_channel_closed_after_an_unconfirmed_publish_is_replaced(
    dispatcher: RabbitMQDispatcher, queue: str
) -> None:
    missing = f"chronos-missing-{secrets.token_hex(4)}"
    # Without confirms this returns before the broker closes the channel over the missing
    # exchange; the thread's next messages must not be sent into that closed channel.
    dispatcher.dispatch(delivery(rabbitmq_job(exchange=missing, routing_key=queue, confirm=False)))
    job = rabbitmq_job(routing_key=queue, confirm=False)
    wait_until(
        lambda: _succeeds(dispatcher, delivery(job)) and get(queue) is not None,
        10,
        "a message through a fresh channel",
    )


def test_unroutable_mandatory_message_is_a_retryable_failure(
    dispatcher: RabbitMQDispatcher,
) -> None:
    nowhere = f"chronos-unbound-{secrets.token_hex(4)}"
    with pytest.raises(RetryableDispatchError, match="unroutable"):
        dispatcher.dispatch(delivery(rabbitmq_job(routing_key=nowhere, mandatory=True)))


def test_bad_credentials_fail_permanently(dispatcher: RabbitMQDispatcher) -> None:
    url = AMQP.replace("guest:guest", "guest:wrong")
    with pytest.raises(PermanentDispatchError, match="ACCESS_REFUSED"):
        dispatcher.dispatch(delivery(rabbitmq_job(url=url, routing_key="any")))


def test_transient_messages_without_confirms(dispatcher: RabbitMQDispatcher, queue: str) -> None:
    outcome = dispatcher.dispatch(
        delivery(rabbitmq_job(routing_key=queue, persistent=False, confirm=False))
    )
    assert outcome.response == '{"confirmed":false}'
    wait_until(
        lambda: (message := get(queue)) is not None and message[0].delivery_mode == 1, 5, "message"
    )


@pytest.mark.slow
def test_broker_restart_is_survived_by_the_same_dispatcher(
    dispatcher: RabbitMQDispatcher, tmp_path: Path
) -> None:
    server = private_rabbitmq(tmp_path).start()
    url = f"amqp://guest:guest@127.0.0.1:{server.port}/"
    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        connection.channel().queue_declare("restart", durable=True)
        connection.close()
        job = rabbitmq_job(url=url, routing_key="restart", mandatory=True)
        dispatcher.dispatch(delivery(job))
        server.stop()

        with pytest.raises(RetryableDispatchError):
            dispatcher.dispatch(delivery(job, timeout=2))

        server.start()
        after = delivery(job, timeout=2)
        wait_until(lambda: _succeeds(dispatcher, after), 30, "dispatch after restart")
        ids = []
        while (message := get("restart", url)) is not None:
            ids.append(message[0].message_id)
        assert str(after.execution_id) in ids
    finally:
        server.stop()


def _succeeds(dispatcher: RabbitMQDispatcher, attempt: Delivery) -> bool:
    try:
        dispatcher.dispatch(attempt)
    except RetryableDispatchError:
        return False
    return True
