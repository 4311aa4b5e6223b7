"""Kafka delivery with aiokafka: one producer per broker list and producer settings, per process.

The record's value is the payload as JSON; its key is the job's key template, or the job id so
that one job's records keep their order; its headers carry the execution's id headers (the
execution id is the consumer's dedupe handle). Success is the broker's answer for the
configured `acks` (`0` means "written to the socket").

Before a producer's first record to a topic, the dispatcher asks the broker for the topic's
metadata with auto-creation as configured: a topic that does not exist, with auto-creation off,
fails the attempt permanently instead of stalling until the timeout. aiokafka reconnects its
producers by itself after a broker restart. Its errors are translated in `_kafka_errors` only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError, UnknownError
from aiokafka.protocol.metadata import MetadataRequest

from services.workers.dispatch.base import Delivery, Outcome
from services.workers.dispatch.loop import LoopThread
from services.workers.dispatch.message import ack_text, body, wait_limit
from shared.errors import DispatchTimeoutError, PermanentDispatchError, RetryableDispatchError
from shared.jobs import KafkaTarget
from shared.secrets import resolve
from shared.settings import Settings

_UNKNOWN_TOPIC = 3
_ACKS: dict[str, int | str] = {"all": "all", "1": 1, "0": 0}


def create(settings: Settings) -> KafkaDispatcher:
    return KafkaDispatcher(settings)


@dataclass(frozen=True)
class _ProducerKey:
    brokers: tuple[str, ...]
    acks: str
    compression: str | None
    sasl: tuple[str, str] | None


class KafkaDispatcher:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loop = LoopThread("kafka-dispatch")
        # Touched only on the loop thread.
        self._producers: dict[_ProducerKey, AIOKafkaProducer] = {}
        self._checked: set[tuple[_ProducerKey, str]] = set()
        self._starting: asyncio.Lock | None = None

    def dispatch(self, delivery: Delivery) -> Outcome:
        target = delivery.job.kafka
        if target is None:
            raise PermanentDispatchError(f"job {delivery.job.id!r} has no kafka target")
        key = _ProducerKey(
            brokers=tuple(target.brokers),
            acks=target.acks or self._settings.kafka_acks,
            compression=target.compression,
            sasl=_sasl(target),
        )
        auto_create = (
            target.auto_create_topic
            if target.auto_create_topic is not None
            else self._settings.kafka_auto_create_topics
        )
        record_key = (target.key or "{job_id}").format(
            job_id=delivery.job.id, execution_id=delivery.execution_id
        )
        headers = [(name, value.encode()) for name, value in delivery.id_headers().items()]
        limit = wait_limit(delivery, target.timeout, self._settings.kafka_timeout)
        with _kafka_errors(target, limit):
            partition, offset = self._loop.run(
                self._send(key, target, auto_create, record_key.encode(), body(delivery), headers),
                limit,
                delivery.cancelled,
            )
        return Outcome(response=ack_text(topic=target.topic, partition=partition, offset=offset))

    async def _send(
        self,
        key: _ProducerKey,
        target: KafkaTarget,
        auto_create: bool,
        record_key: bytes,
        value: bytes,
        headers: list[tuple[str, bytes]],
    ) -> tuple[int | None, int | None]:
        producer = await self._producer(key)
        if (key, target.topic) not in self._checked:
            await _check_topic(producer, target.topic, auto_create)
            self._checked.add((key, target.topic))
        metadata = await producer.send_and_wait(
            target.topic, value, key=record_key, partition=target.partition, headers=headers
        )
        if metadata is None:
            # acks=0: the record left in a batch and the broker answers nothing.
            return None, None
        return metadata.partition, metadata.offset

    async def _producer(self, key: _ProducerKey) -> AIOKafkaProducer:
        producer = self._producers.get(key)
        if producer is not None:
            return producer
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            producer = self._producers.get(key)
            if producer is not None:
                return producer
            producer = _make_producer(key, self._settings.kafka_timeout)
            try:
                await producer.start()
            except BaseException:
                # A producer that never connected is not kept: the next attempt starts afresh.
                await producer.stop()
                raise
            self._producers[key] = producer
            return producer

    def close(self) -> None:
        async def stop_all() -> None:
            producers, self._producers = list(self._producers.values()), {}
            for producer in producers:
                await producer.stop()

        self._loop.shutdown(stop_all)


def _sasl(target: KafkaTarget) -> tuple[str, str] | None:
    if target.sasl_username is None:
        return None
    return resolve(target.sasl_username), resolve(target.sasl_password or "")


def _make_producer(key: _ProducerKey, timeout: timedelta) -> AIOKafkaProducer:
    sasl = (
        {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_plain_username": key.sasl[0],
            "sasl_plain_password": key.sasl[1],
        }
        if key.sasl
        else {}
    )
    return AIOKafkaProducer(
        bootstrap_servers=list(key.brokers),
        acks=_ACKS[key.acks],
        compression_type=key.compression,
        request_timeout_ms=int(timeout.total_seconds() * 1000),
        client_id="chronos-worker",
        **sasl,
    )


async def _check_topic(producer: AIOKafkaProducer, topic: str, auto_create: bool) -> None:
    client = producer.client
    node = client.get_random_node()
    response = await client.send(node, MetadataRequest([topic], auto_create))
    for error_code, name, *_ in response.topics:
        if name == topic and error_code == _UNKNOWN_TOPIC:
            raise PermanentDispatchError(
                f"kafka topic {topic!r} does not exist and auto-creation is off "
                "(create it, or set auto_create_topic / KAFKA_AUTO_CREATE_TOPICS)"
            )


@contextmanager
def _kafka_errors(target: KafkaTarget, limit: timedelta) -> Iterator[None]:
    """The one place aiokafka exceptions become dispatch errors."""
    where = f"kafka {','.join(target.brokers)} topic {target.topic!r}"
    try:
        yield
    except (TimeoutError, KafkaTimeoutError) as exc:
        raise DispatchTimeoutError(f"{where}: no ack within {limit.total_seconds():g}s") from exc
    except KafkaError as exc:
        # UNKNOWN_SERVER_ERROR is the broker's HTTP 500: retried, like any server error.
        retry = exc.retriable or isinstance(exc, UnknownError)
        error = RetryableDispatchError if retry else PermanentDispatchError
        raise error(f"{where}: {_describe(exc)}") from exc
    except (ValueError, TypeError) as exc:
        # aiokafka rejects bad arguments (partition, codec, broker address) with these.
        raise PermanentDispatchError(f"{where}: {exc}") from exc


def _describe(exc: KafkaError) -> str:
    text, name = str(exc), type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}"
