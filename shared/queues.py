"""How many messages wait in each Dramatiq queue, read from the broker itself.

Redis broker (key names from `dramatiq/brokers/redis/dispatch.lua`, prefix `<namespace>:`):
ready is the list `<queue>`; delayed is the hash `<queue>.DQ.msgs` (messages wait there, some
held in a worker's memory until their time, until they move to the queue); dead is the sorted
set `<queue>.XQ`, scored by the time each message died.

RabbitMQ: a passive declare of `<queue>`, `<queue>.DQ` and `<queue>.XQ` gives the number of
messages ready in each; messages a consumer holds unacknowledged (prefetched, or delayed ones
waiting for their time in a worker) are not counted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import redis

from shared.broker import queue_name
from shared.errors import UnavailableError
from shared.settings import Settings

STATES = ("ready", "delayed", "dead")


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    ready: int
    delayed: int
    dead: int
    # Seconds since the oldest message of each state was enqueued (died, for dead letters);
    # None when the state is empty or the broker cannot say without taking the message.
    oldest_ready_age: float | None = None
    oldest_delayed_age: float | None = None
    oldest_dead_age: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def queue_names(settings: Settings) -> list[str]:
    """Every queue this deployment uses."""
    return [queue_name(settings)]


def read_depths(
    settings: Settings, queues: Sequence[str] | None = None, *, ages: bool = True
) -> list[QueueDepth]:
    """The depth of each queue; raises UnavailableError if the broker cannot be reached."""
    names = list(queues or queue_names(settings))
    try:
        if settings.broker_kind == "rabbitmq":
            return _rabbitmq(settings.broker_url, names, ages)
        return _redis(settings.broker_url, settings.chronos_namespace, names, ages)
    except UnavailableError:
        raise
    except Exception as exc:
        raise UnavailableError(f"broker unavailable: {type(exc).__name__}: {exc}") from exc


def _age(timestamp_ms: float | None, now: float) -> float | None:
    return None if timestamp_ms is None else max(0.0, now - timestamp_ms / 1000)


def _message_timestamp(data: bytes | str | None) -> float | None:
    if not data:
        return None
    try:
        return float(json.loads(data)["message_timestamp"])
    except (ValueError, KeyError, TypeError):
        return None


def _redis(url: str, namespace: str, names: list[str], ages: bool) -> list[QueueDepth]:
    client = redis.Redis.from_url(url)
    try:
        depths = []
        for name in names:
            key = f"{namespace}:{name}"
            pipe = client.pipeline(transaction=False)
            pipe.llen(key)
            pipe.hlen(f"{key}.DQ.msgs")
            pipe.zcard(f"{key}.XQ")
            if ages:
                pipe.lindex(key, 0)
                pipe.lindex(f"{key}.DQ", 0)
                pipe.zrange(f"{key}.XQ", 0, 0, withscores=True)
            replies = pipe.execute()
            ready, delayed, dead = (int(r) for r in replies[:3])
            if not ages:
                depths.append(QueueDepth(name, ready, delayed, dead))
                continue
            head, delayed_head, dead_head = replies[3:]
            now = time.time()
            ready_at = _message_timestamp(client.hget(f"{key}.msgs", head)) if head else None
            delayed_at = (
                _message_timestamp(client.hget(f"{key}.DQ.msgs", delayed_head))
                if delayed_head
                else None
            )
            dead_at = float(dead_head[0][1]) if dead_head else None
            depths.append(
                QueueDepth(
                    name,
                    ready,
                    delayed,
                    dead,
                    oldest_ready_age=_age(ready_at, now),
                    oldest_delayed_age=_age(delayed_at, now),
                    oldest_dead_age=_age(dead_at, now),
                )
            )
        return depths
    finally:
        client.close()


def _rabbitmq(url: str, names: list[str], ages: bool) -> list[QueueDepth]:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        depths = []
        for name in names:
            counts: dict[str, int] = {}
            heads: dict[str, float | None] = {}
            for state, suffix in zip(STATES, ("", ".DQ", ".XQ"), strict=True):
                channel = connection.channel()
                try:
                    declared = channel.queue_declare(name + suffix, passive=True)
                    counts[state] = declared.method.message_count
                    heads[state] = _peek(channel, name + suffix) if ages and counts[state] else None
                except pika.exceptions.ChannelClosedByBroker as exc:
                    if exc.reply_code != 404:
                        raise
                    # Not declared yet: no producer or worker has used this queue.
                    counts[state], heads[state] = 0, None
                finally:
                    if channel.is_open:
                        channel.close()
            now = time.time()
            depths.append(
                QueueDepth(
                    name,
                    counts["ready"],
                    counts["delayed"],
                    counts["dead"],
                    oldest_ready_age=_age(heads["ready"], now),
                    oldest_delayed_age=_age(heads["delayed"], now),
                    oldest_dead_age=_age(heads["dead"], now),
                )
            )
        return depths
    finally:
        connection.close()


def _peek(channel: Any, queue: str) -> float | None:
    """The enqueue time of the head message. AMQP cannot look without taking, so the message
    is taken unacknowledged and given straight back, to its place at the head."""
    method, _properties, body = channel.basic_get(queue, auto_ack=False)
    if method is None:
        return None
    channel.basic_nack(method.delivery_tag, requeue=True)
    return _message_timestamp(body)
