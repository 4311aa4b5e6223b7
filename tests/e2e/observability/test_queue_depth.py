"""Queue depth as `chronos queues` and the `/metrics` endpoint report it, on both brokers."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from worker_fixtures import WorkerProcesses
from worker_fixtures import broker_url as broker_url

from shared.broker import Enqueuer, make_broker, queue_name
from shared.settings import Settings

pytestmark = pytest.mark.slow

CHRONOS = Path(sys.executable).with_name("chronos")
MESSAGES = 500


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chronos_queues(env: dict[str, str]) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(CHRONOS), "queues", "--json"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def scraped_depth(url: str, queue: str, state: str) -> float | None:
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return None
    match = re.search(
        rf'^chronos_queue_depth\{{queue="{re.escape(queue)}",state="{state}"\}} (\S+)$',
        text,
        re.MULTILINE,
    )
    return float(match.group(1)) if match else None


def wait_for(probe: Any, expected: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while (value := probe()) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {expected!r}, still {value!r}")
        time.sleep(0.2)


@pytest.fixture
def ticker_metrics(settings_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """A ticker process serving `/metrics`: the depth it reports comes from the broker."""
    port = free_port()
    log = (tmp_path / "ticker.log").open("wb")
    proc = subprocess.Popen(
        [str(CHRONOS), "ticker"],
        env={**settings_env, "METRICS_PORT": str(port)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield f"http://127.0.0.1:{port}/metrics"
    proc.terminate()
    proc.wait(timeout=30)


def test_depth_of_waiting_messages_then_drained(
    settings: Settings,
    settings_env: dict[str, str],
    ticker_metrics: str,
    worker_processes: WorkerProcesses,
) -> None:
    broker = make_broker(settings)
    enqueuer = Enqueuer(broker, queue_name(settings))
    try:
        for _ in range(MESSAGES):
            enqueuer.enqueue(uuid4())
    finally:
        enqueuer.close()
    queue = queue_name(settings)

    (depth,) = chronos_queues(settings_env)
    assert (depth["queue"], depth["ready"], depth["delayed"], depth["dead"]) == (
        queue,
        MESSAGES,
        0,
        0,
    )
    assert depth["oldest_ready_age"] is not None and depth["oldest_ready_age"] >= 0
    wait_for(lambda: scraped_depth(ticker_metrics, queue, "ready"), float(MESSAGES))

    watch = subprocess.Popen(
        [str(CHRONOS), "queues", "--watch", "--json", "--interval", "0.2"],
        env=settings_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        readings = (json.loads(line)[0]["ready"] for line in watch.stdout)
        assert next(readings) == MESSAGES
        # Messages for executions that do not exist are acknowledged and dropped by the worker.
        worker_processes.start("--processes", "1", "--threads", "8")
        wait_for(lambda: scraped_depth(ticker_metrics, queue, "ready"), 0.0)
        deadline = time.monotonic() + 30
        # `--watch` keeps reading: it follows the queue down to empty.
        while (ready := next(readings)) != 0:
            assert ready <= MESSAGES and time.monotonic() < deadline
    finally:
        watch.terminate()
        watch.wait(timeout=10)
    (depth,) = chronos_queues(settings_env)
    assert (depth["ready"], depth["delayed"], depth["dead"]) == (0, 0, 0)
    assert depth["oldest_ready_age"] is None
