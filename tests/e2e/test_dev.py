"""`chronos dev` with no DATABASE_URL / REDIS_URL: embedded servers, the example jobs delivered,
Ctrl-C stops every process, and a second start finds the first one's data."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90
# The acceptance bar: the every-10-seconds heartbeat reaches the target this soon after the
# stack reports it is running.
HEARTBEAT_WITHIN_S = 15
DELIVERY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 60

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Dev:
    """One `chronos dev` process whose output is collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "dev", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[start:]:
                    match = re.search(pattern, line)
                    if match:
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    output = "\n".join(self.lines[-60:])
                    pytest.fail(f"no line matching {pattern!r} within {timeout}s:\n{output}")
                self._changed.wait(min(left, 0.5))

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(STOP_TIMEOUT_S)

    def kill(self) -> None:
        if self.process.poll() is None:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                child.kill()
            self.process.kill()
            self.process.wait()


@pytest.fixture
def start_dev(tmp_path: Path) -> Iterator[Callable[[], Dev]]:
    echo_port, api_port = _free_port(), _free_port()
    jobs = tmp_path / "jobs.yaml"
    example = (ROOT / "examples" / "jobs.yaml").read_text()
    jobs.write_text(example.replace("127.0.0.1:8080", f"127.0.0.1:{echo_port}"))
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "BROKER_URL")
    }
    env["PYTHONUNBUFFERED"] = "1"
    args = [
        "--jobs", str(jobs), "--data-dir", str(tmp_path / ".chronos"),
        "--port", str(api_port), "--echo", "--echo-port", str(echo_port),
    ]  # fmt: skip
    started: list[Dev] = []

    def start() -> Dev:
        dev = Dev(args, env)
        started.append(dev)
        return dev

    yield start
    for dev in started:
        dev.kill()


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])


def test_dev_runs_the_example_stops_cleanly_and_keeps_its_data(
    start_dev: Callable[[], Dev], tmp_path: Path
) -> None:
    dev = start_dev()
    dev.wait_for(r"Chronos is running", START_TIMEOUT_S)
    ready = len(dev.lines)
    database_url = dev.wait_for(r"^\s+Postgres\s+(\S+)", 1).group(1)
    curl = dev.wait_for(r"^\s+(curl .*)$", 1).group(1)

    # The every-10-seconds heartbeat reaches the echo target.
    dev.wait_for(
        r"delivery job=heartbeat execution=\S+ attempt=1 POST /heartbeat", HEARTBEAT_WITHIN_S, ready
    )

    # The printed curl line is accepted, and its execution is delivered.
    answer = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, check=True)
    body = json.loads(answer.stdout)
    assert body["status"] == "accepted" and body["jobId"] == "order-created", body
    execution_id = body["executionId"]
    dev.wait_for(
        rf"delivery job=order-created execution={execution_id} attempt=1 POST /orders",
        DELIVERY_TIMEOUT_S,
    )

    # Ctrl-C stops every child and the embedded servers.
    children = psutil.Process(dev.process.pid).children(recursive=True)
    assert len(children) >= 5, children  # echo, worker (+ its process), ticker, ingress, redis
    postmaster = psutil.Process(_postmaster_pid(tmp_path / ".chronos"))
    assert dev.stop() == 0, "\n".join(dev.lines[-40:])
    _, alive = psutil.wait_procs([*children, postmaster], timeout=10)
    assert not alive, alive
    # Cleanly: every service stopped on its own, none had to be killed after the grace period.
    assert dev.lines[-1] == "stopped", dev.lines[-40:]
    assert not [line for line in dev.lines if "did not stop in time" in line]

    # A second start reuses the data: same schema, same jobs, the first run's executions.
    again = start_dev()
    again.wait_for(r"schema is up to date", START_TIMEOUT_S)
    again.wait_for(r"jobs: no changes", 5)
    again.wait_for(r"Chronos is running", START_TIMEOUT_S)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT status FROM executions WHERE id = %s", (execution_id,)
        ).fetchone()
    assert row == ("succeeded",)
    assert again.stop() == 0
