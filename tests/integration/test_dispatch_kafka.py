"""Kafka dispatch against the Kafka-compatible broker (Tansu), read back by a real consumer."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from broker_servers import KAFKA, delivery, private_kafka, wait_until

from services.workers.dispatch.base import Delivery
from services.workers.dispatch.kafka import KafkaDispatcher
from shared.errors import PermanentDispatchError, RetryableDispatchError
from shared.settings import load_settings


@pytest.fixture
def dispatcher() -> Iterator[KafkaDispatcher]:
    made = KafkaDispatcher(load_settings())
    yield made
    made.close()


async def _admin(action: str, topic: str, brokers: str = KAFKA) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        if action == "create":
            await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        elif action == "delete":
            await admin.delete_topics([topic])
        topics: list[str] = await admin.list_topics()
        return topics
    finally:
        await admin.close()


@pytest.fixture
def topic() -> Iterator[str]:
    name = f"chronos-test-{secrets.token_hex(5)}"
    asyncio.run(_admin("create", name))
    yield name
    asyncio.run(_admin("delete", name))


def consume(topic: str, count: int, brokers: str = KAFKA) -> list[ConsumerRecord[Any, Any]]:
    async def main() -> list[ConsumerRecord[Any, Any]]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=brokers, auto_offset_reset="earliest")
        await consumer.start()
        try:
            records: list[ConsumerRecord[Any, Any]] = []
            for _ in range(50):
                batches = await consumer.getmany(timeout_ms=200)
                records += [record for batch in batches.values() for record in batch]
                if len(records) >= count:
                    break
            return records
        finally:
            await consumer.stop()

    return asyncio.run(main())


def kafka_job(topic: str, brokers: str = KAFKA, **fields: Any) -> dict[str, Any]:
    return {"kafka": {"brokers": [brokers], "topic": topic, **fields}}


def test_record_carries_payload_key_and_id_headers(dispatcher: KafkaDispatcher, topic: str) -> None:
    attempt = delivery(kafka_job(topic))

    outcome = dispatcher.dispatch(attempt)

    assert json.loads(outcome.response or "") == {"topic": topic, "partition": 0, "offset": 0}
    [record] = consume(topic, 1)
    assert json.loads(record.value) == {"order": 42}
    assert record.key == b"dispatch-test"
    headers = {name: value.decode() for name, value in record.headers}
    assert headers["X-Chronos-Execution-ID"] == str(attempt.execution_id)
    assert headers["X-Chronos-Job-ID"] == "dispatch-test"
    assert headers["X-Chronos-Attempt"] == "1"
    assert headers["traceparent"] == attempt.traceparent


@pytest.mark.parametrize("acks", ["all", "1", "0"])
def test_key_template_and_acks(dispatcher: KafkaDispatcher, topic: str, acks: str) -> None:
    attempt = delivery(kafka_job(topic, key="{job_id}/{execution_id}", acks=acks))
    dispatcher.dispatch(attempt)
    [record] = consume(topic, 1)
    assert record.key == f"dispatch-test/{attempt.execution_id}".encode()


def test_unknown_topic_with_auto_create_off_fails_permanently(
    dispatcher: KafkaDispatcher,
) -> None:
    missing = f"chronos-missing-{secrets.token_hex(5)}"
    with pytest.raises(PermanentDispatchError, match=f"{missing}' does not exist") as caught:
        dispatcher.dispatch(delivery(kafka_job(missing), timeout=3))
    assert not caught.value.retryable
    assert missing not in asyncio.run(_admin("list", missing))


def test_auto_create_per_job_creates_the_topic(dispatcher: KafkaDispatcher) -> None:
    created = f"chronos-auto-{secrets.token_hex(5)}"
    try:
        dispatcher.dispatch(delivery(kafka_job(created, auto_create_topic=True)))
        assert len(consume(created, 1)) == 1
    finally:
        asyncio.run(_admin("delete", created))


def test_unreachable_broker_is_retryable(dispatcher: KafkaDispatcher) -> None:
    with pytest.raises(RetryableDispatchError, match=r"127\.0\.0\.1:1\b"):
        dispatcher.dispatch(delivery(kafka_job("any", brokers="127.0.0.1:1"), timeout=3))


@pytest.mark.slow
def test_broker_restart_is_survived_by_the_same_dispatcher(dispatcher: KafkaDispatcher) -> None:
    server = private_kafka().start()
    brokers = f"127.0.0.1:{server.port}"
    job = kafka_job("restart", brokers=brokers)
    try:
        asyncio.run(_admin("create", "restart", brokers))
        dispatcher.dispatch(delivery(job))
        server.stop()

        with pytest.raises(RetryableDispatchError):
            dispatcher.dispatch(delivery(job, timeout=2))

        server.start()
        # The private broker keeps topics in memory only; a real one still has the topic.
        asyncio.run(_admin("create", "restart", brokers))
        after = delivery(job, timeout=2)
        wait_until(lambda: _succeeds(dispatcher, after), 40, "dispatch after restart")
        records = consume("restart", 1, brokers)
        assert str(after.execution_id).encode() in [
            value for record in records for name, value in record.headers
        ]
    finally:
        server.stop()


def _succeeds(dispatcher: KafkaDispatcher, attempt: Delivery) -> bool:
    try:
        dispatcher.dispatch(attempt)
    except RetryableDispatchError:
        return False
    return True
