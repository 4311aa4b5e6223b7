"""Fixtures for delivery tests, imported by the workers' conftest files: both brokers, a loopback
target, an in-process worker, and helpers to fire jobs and wait for their executions."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import dramatiq
import pytest
from http_target import Target

from services.workers.process import WorkerProcess
from shared.db import Database
from shared.jobs import Job
from shared.settings import Settings
from shared.store import executions

# The same servers as tests/conftest.py (whose module name is ambiguous to import).
REDIS_URL = os.environ.get("CHRONOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("CHRONOS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
CHRONOS = Path(sys.executable).with_name("chronos")
FAST_RETRY = {"max_attempts": 3, "initial_interval": "50ms", "max_interval": "200ms"}


@pytest.fixture(params=["redis", "amqp"])
def broker_url(request: pytest.FixtureRequest, namespace: str) -> Iterator[str]:
    if request.param == "redis":
        yield REDIS_URL
        return
    yield AMQP_URL
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    for suffix in ("", ".DQ", ".XQ"):
        channel.queue_delete(f"{namespace}.executions{suffix}")
    connection.close()


@pytest.fixture
def target() -> Iterator[Target]:
    server = Target()
    yield server
    server.close()


@contextlib.contextmanager
def consuming(settings: Settings) -> Iterator[WorkerProcess]:
    """A worker process's whole stack, with Dramatiq consuming in this process."""
    process = WorkerProcess(settings)
    consumer = dramatiq.Worker(process.broker, worker_threads=4, worker_timeout=100)
    consumer.start()
    try:
        yield process
    finally:
        consumer.stop()
        process.close()


@pytest.fixture
def worker(settings: Settings) -> Iterator[WorkerProcess]:
    with consuming(settings) as process:
        yield process


def make_job(url: str, **fields: Any) -> Job:
    spec: dict[str, Any] = {
        "id": "deliver",
        "webhook": {"url": url},
        "retry_policy": FAST_RETRY,
        "timeout": "5s",
    }
    webhook = fields.pop("webhook", {})
    spec.update(fields)
    spec["webhook"] = {"url": url, **webhook}
    return Job.model_validate(spec)


def wait_terminal(db: Database, execution_id: UUID, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        with db.transaction() as conn:
            row = executions.get(conn, execution_id)
        if row is not None and row["status"] in executions.TERMINAL_STATES:
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"execution not terminal after {timeout}s: {row}")
        time.sleep(0.05)


def attempts(db: Database, execution_id: UUID) -> list[dict[str, Any]]:
    with db.transaction() as conn:
        return executions.attempts_of(conn, execution_id)


class WorkerProcesses:
    """`chronos worker` as a user runs it, in its own process group so it can be killed whole."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"worker-{len(self.started)}.log").open("wb")
        proc = subprocess.Popen(
            [str(CHRONOS), "worker", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGKILL) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        proc.wait(timeout=30)

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                self.kill(proc, signal.SIGTERM)
        for proc in self.started:
            with contextlib.suppress(ProcessLookupError):
                # Children of the Dramatiq parent that outlived it.
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def worker_processes(settings_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerProcesses]:
    env = {**settings_env, "WORKER_HEARTBEAT_TIMEOUT": "2s"}
    log_dir = tmp_path / "workers"
    log_dir.mkdir()
    processes = WorkerProcesses(env, log_dir)
    yield processes
    processes.stop_all()
