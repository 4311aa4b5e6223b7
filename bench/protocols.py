"""Delivery throughput of `chronos worker` per target protocol, against HTTP in the same run.

Each protocol drains `--jobs` queued executions with `--processes` worker processes of
`--threads` threads (Redis broker, real Postgres, attempt rows recorded), delivering to the
shared local servers: an nginx `return 200` (the HTTP baseline), the Kafka-compatible broker on
9092, NATS (plain publish and JetStream) on 4222, RabbitMQ on 5672 with publisher confirms, and
a gRPC server with a generic handler in this process. Throughput is executions over the span
between the first and the last finish; the ratio is against the HTTP baseline.

    .venv/bin/python bench/protocols.py [--jobs 3000] [--processes 2] [--threads 8]

Needs nginx (Debian: `apt-get install nginx-light`) and the servers of scripts/services-up.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import grpc
import nats
import pika
import psycopg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pipeline import (
    CHRONOS,
    DRAIN_TIMEOUT_S,
    count_and_span,
    database,
    free_port,
    namespace,
    nginx,
    processes,
    queue_executions,
    wait,
    worker_env,
)

from shared.jobs import Job
from shared.migrate import migrate

KAFKA = "127.0.0.1:9092"
NATS = "nats://127.0.0.1:4222"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
GRPC_METHOD = "chronos.bench.Jobs/Run"


@contextmanager
def kafka_topic() -> Iterator[dict[str, Any]]:
    topic = f"chronos-bench-{secrets.token_hex(4)}"

    async def admin(create: bool) -> None:
        client = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
        await client.start()
        try:
            if create:
                await client.create_topics([NewTopic(topic, 1, 1)])
            else:
                await client.delete_topics([topic])
        finally:
            await client.close()

    asyncio.run(admin(create=True))
    try:
        yield {"kafka": {"brokers": [KAFKA], "topic": topic}}
    finally:
        asyncio.run(admin(create=False))


@contextmanager
def nats_subject(mode: str) -> Iterator[dict[str, Any]]:
    subject = f"chronos.bench.{secrets.token_hex(4)}"
    stream = f"CHRONOS_BENCH_{secrets.token_hex(4).upper()}"

    async def streams(create: bool) -> None:
        client = await nats.connect(NATS)
        js = client.jetstream()
        if create:
            await js.add_stream(name=stream, subjects=[subject])
        else:
            await js.delete_stream(stream)
        await client.close()

    if mode == "jetstream":
        asyncio.run(streams(create=True))
    try:
        yield {"nats": {"url": NATS, "subject": subject, "mode": mode}}
    finally:
        if mode == "jetstream":
            asyncio.run(streams(create=False))


@contextmanager
def rabbitmq_queue() -> Iterator[dict[str, Any]]:
    queue = f"chronos-bench-{secrets.token_hex(4)}"
    connection = pika.BlockingConnection(pika.URLParameters(AMQP))
    connection.channel().queue_declare(queue)
    try:
        yield {"rabbitmq": {"url": AMQP, "routing_key": queue}}
    finally:
        connection.channel().queue_delete(queue)
        connection.close()


class _Answer(grpc.GenericRpcHandler):
    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(lambda request, context: b"{}")


@contextmanager
def grpc_server() -> Iterator[dict[str, Any]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers([_Answer()])
    address = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(address)
    server.start()
    try:
        yield {"grpc": {"address": address, "method": GRPC_METHOD}}
    finally:
        server.stop(grace=None)


@contextmanager
def http_target() -> Iterator[dict[str, Any]]:
    with nginx() as url:
        yield {"webhook": {"url": url}}


def run(opts: argparse.Namespace, target: dict[str, Any]) -> float:
    with database() as url, namespace() as ns:
        migrate(url)
        job = Job.model_validate({"id": "bench", "payload": {"n": 1}, **target})
        queue_executions(url, ns, job, opts.jobs)
        finished = (
            "SELECT count(*), min(finished_at), max(finished_at) FROM executions "
            "WHERE status IN ('succeeded', 'failed')"
        )
        args = [CHRONOS, "worker", "--processes", str(opts.processes)]
        with processes([*args, "--threads", str(opts.threads)], worker_env(url, ns)):
            wait(lambda: count_and_span(url, finished)[0] >= opts.jobs, DRAIN_TIMEOUT_S, "drain")
        n, span = count_and_span(url, finished)
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM executions WHERE status = 'succeeded'")
            succeeded = row.fetchone()
        if succeeded is None or succeeded[0] != opts.jobs:
            raise SystemExit(f"only {succeeded} of {opts.jobs} executions succeeded")
        return n / span


TARGETS: dict[str, Callable[[], AbstractContextManager[dict[str, Any]]]] = {
    "http": http_target,
    "kafka": kafka_topic,
    "nats-publish": lambda: nats_subject("publish"),
    "nats-jetstream": lambda: nats_subject("jetstream"),
    "rabbitmq": rabbitmq_queue,
    "grpc": grpc_server,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--only", nargs="*", choices=list(TARGETS), default=list(TARGETS))
    opts = parser.parse_args()
    rates: dict[str, float] = {}
    for name in ["http", *[n for n in opts.only if n != "http"]]:
        with TARGETS[name]() as target:
            rates[name] = run(opts, target)
        print(f"{name:15s} {rates[name]:8.0f} executions/s", flush=True)
    for name, rate in rates.items():
        if name != "http":
            print(f"ratio {name}/http: {rate / rates['http']:.2f}x")


if __name__ == "__main__":
    main()
