"""Broker and gRPC targets through the real pipeline: trigger → queue → in-process worker →
Kafka / NATS JetStream / RabbitMQ / gRPC, then the rows in Postgres and the message itself."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from typing import Any

import nats
import pika
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from broker_servers import AMQP, KAFKA, NATS, GrpcServer, wait_until
from worker_fixtures import FAST_RETRY, REDIS_URL, attempts, wait_terminal

from services.workers.process import WorkerProcess
from shared.jobs import Job
from shared.runtime import Runtime

METHOD = "chronos.test.Jobs/Run"
PAYLOAD = {"invoice": 7}


@pytest.fixture
def broker_url() -> str:
    # The protocol under test is the target's; one Dramatiq broker is enough here.
    return REDIS_URL


def job(**target: Any) -> Job:
    return Job.model_validate(
        {"id": "broker-target", "retry_policy": FAST_RETRY, "timeout": "5s", **target}
    )


def fire_and_wait(runtime: Runtime, spec: Job) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    fired = runtime.triggers.fire(spec, "manual", payload=PAYLOAD)
    row = wait_terminal(runtime.db, fired.execution_id)
    return str(fired.execution_id), row, attempts(runtime.db, fired.execution_id)


def assert_one_successful_attempt(row: dict[str, Any], tries: list[dict[str, Any]]) -> None:
    assert row["status"] == "succeeded", row
    assert row["attempts"] == 1
    assert [a["outcome"] for a in tries] == ["succeeded"]


@pytest.fixture
def topic() -> Iterator[str]:
    name = f"chronos-e2e-{secrets.token_hex(5)}"

    async def admin(create: bool) -> None:
        client = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
        await client.start()
        try:
            if create:
                await client.create_topics([NewTopic(name, 1, 1)])
            else:
                await client.delete_topics([name])
        finally:
            await client.close()

    asyncio.run(admin(create=True))
    yield name
    asyncio.run(admin(create=False))


def test_kafka_job_succeeds_and_the_record_arrives(
    runtime: Runtime, worker: WorkerProcess, topic: str
) -> None:
    execution_id, row, tries = fire_and_wait(
        runtime, job(kafka={"brokers": [KAFKA], "topic": topic})
    )

    assert_one_successful_attempt(row, tries)
    assert json.loads(tries[0]["response"])["topic"] == topic

    async def first_record() -> Any:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=KAFKA, auto_offset_reset="earliest")
        await consumer.start()
        try:
            return await asyncio.wait_for(consumer.getone(), 10)
        finally:
            await consumer.stop()

    record = asyncio.run(first_record())
    assert json.loads(record.value) == PAYLOAD
    assert record.key == b"broker-target"
    assert ("X-Chronos-Execution-ID", execution_id.encode()) in record.headers


def test_nats_jetstream_job_succeeds_and_the_message_is_stored(
    runtime: Runtime, worker: WorkerProcess
) -> None:
    subject = f"chronos.e2e.{secrets.token_hex(5)}"
    stream = f"CHRONOS_E2E_{secrets.token_hex(4).upper()}"

    async def with_stream() -> tuple[str, dict[str, Any], list[dict[str, Any]], Any]:
        client = await nats.connect(NATS)
        js = client.jetstream()
        await js.add_stream(name=stream, subjects=[subject])
        try:
            spec = job(nats={"url": NATS, "subject": subject, "mode": "jetstream"})
            done = await asyncio.to_thread(fire_and_wait, runtime, spec)
            return (*done, await js.get_msg(stream, 1))
        finally:
            await js.delete_stream(stream)
            await client.close()

    execution_id, row, tries, stored = asyncio.run(with_stream())

    assert_one_successful_attempt(row, tries)
    assert json.loads(stored.data) == PAYLOAD
    assert stored.headers["Nats-Msg-Id"] == execution_id


def test_rabbitmq_job_succeeds_and_the_message_is_queued(
    runtime: Runtime, worker: WorkerProcess
) -> None:
    queue = f"chronos-e2e-{secrets.token_hex(5)}"
    connection = pika.BlockingConnection(pika.URLParameters(AMQP))
    channel = connection.channel()
    channel.queue_declare(queue)
    try:
        execution_id, row, tries = fire_and_wait(
            runtime, job(rabbitmq={"url": AMQP, "routing_key": queue, "mandatory": True})
        )
        _, properties, body = channel.basic_get(queue, auto_ack=True)
    finally:
        channel.queue_delete(queue)
        connection.close()

    assert_one_successful_attempt(row, tries)
    assert json.loads(body) == PAYLOAD
    assert properties.message_id == execution_id
    assert properties.headers["X-Chronos-Job-ID"] == "broker-target"


def test_grpc_job_succeeds_and_keeps_the_result(runtime: Runtime, worker: WorkerProcess) -> None:
    server = GrpcServer().start()
    server.answers["/" + METHOD] = b'{"status":"ok","message":"billed"}'
    try:
        execution_id, row, tries = fire_and_wait(
            runtime, job(grpc={"address": server.address, "method": METHOD})
        )
    finally:
        server.stop()

    assert_one_successful_attempt(row, tries)
    assert row["result"] == {"status": "ok", "message": "billed", "data": None}
    [call] = server.calls
    assert json.loads(call.request) == PAYLOAD
    assert call.metadata["x-chronos-execution-id"] == execution_id


def test_grpc_server_back_after_a_retryable_attempt_is_reached_by_a_retry(
    runtime: Runtime, worker: WorkerProcess
) -> None:
    server = GrpcServer()  # not started yet: its port refuses connections
    server.answers["/" + METHOD] = b"{}"
    # Retries far enough apart for the server to start between the first two attempts.
    spaced = {"max_attempts": 4, "initial_interval": "2s", "max_interval": "2s"}
    fired = runtime.triggers.fire(
        job(grpc={"address": server.address, "method": METHOD}, retry_policy=spaced),
        "manual",
        payload=PAYLOAD,
    )
    wait_until(
        lambda: any(a["outcome"] for a in attempts(runtime.db, fired.execution_id)),
        10,
        "first attempt finished",
    )
    server.start()
    try:
        row = wait_terminal(runtime.db, fired.execution_id)
    finally:
        server.stop()
    tries = attempts(runtime.db, fired.execution_id)

    assert row["status"] == "succeeded", (row, tries)
    outcomes = [a["outcome"] for a in tries]
    assert len(outcomes) >= 2 and outcomes[-1] == "succeeded", outcomes
    assert set(outcomes[:-1]) == {"retryable"}, outcomes
    assert "UNAVAILABLE" in tries[0]["error_message"]
    [call] = server.calls
    assert call.metadata["x-chronos-execution-id"] == str(fired.execution_id)


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ({"kafka": {"brokers": [KAFKA], "topic": "chronos-e2e-missing"}}, "does not exist"),
        ({"rabbitmq": {"url": AMQP, "exchange": "chronos-e2e-missing"}}, "404 NOT_FOUND"),
    ],
    ids=["kafka-missing-topic", "rabbitmq-missing-exchange"],
)
def test_permanent_failures_are_not_retried(
    runtime: Runtime, worker: WorkerProcess, target: dict[str, Any], error: str
) -> None:
    _, row, tries = fire_and_wait(runtime, job(**target))

    assert row["status"] == "failed"
    assert [a["outcome"] for a in tries] == ["failed"]
    assert error in row["error"]


def test_grpc_unknown_method_fails_without_retry(runtime: Runtime, worker: WorkerProcess) -> None:
    server = GrpcServer().start()
    try:
        _, row, tries = fire_and_wait(
            runtime, job(grpc={"address": server.address, "method": "chronos.test.Jobs/Nope"})
        )
    finally:
        server.stop()
    assert row["status"] == "failed"
    assert [a["outcome"] for a in tries] == ["failed"]
    assert "UNIMPLEMENTED" in row["error"]


def test_nats_request_without_responder_is_retried_then_fails(
    runtime: Runtime, worker: WorkerProcess
) -> None:
    subject = f"chronos.e2e.nobody.{secrets.token_hex(5)}"
    _, row, tries = fire_and_wait(
        runtime, job(nats={"url": NATS, "subject": subject, "mode": "request"})
    )
    assert row["status"] == "failed"
    assert len(tries) == FAST_RETRY["max_attempts"]
    assert "no responders" in row["error"]
