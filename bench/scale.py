"""Horizontal scale of `chronos worker`: 1, 2, 4 and 8 processes drain the same backlog.

Each run creates `--jobs` executions through the trigger path in a fresh database and Redis
namespace, then starts `chronos worker --processes N` against `chronos echo-server --delay`
(a loopback target that takes a fixed time per request and prints every delivery). Throughput
is executions over the span between the first and the last completion, so process start-up is
left out. Lost and doubled executions are counted from both ends: Postgres rows (status,
attempts) and the execution ids the target received.

    .venv/bin/python bench/scale.py [--jobs 5000] [--latency 0.05] [--threads 8] [--counts 1,2,4,8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
# bench scripts are not a package: reuse the pipeline benchmark's fixtures by path.
from pipeline import (
    CHRONOS,
    count_and_span,
    database,
    free_port,
    namespace,
    processes,
    queue_executions,
    wait,
    worker_env,
)

from shared.jobs import Job
from shared.migrate import migrate

DRAIN_TIMEOUT_S = 300


@dataclass
class Run:
    processes: int
    seconds: float
    rate: float
    lost: int
    doubled: int


class Target:
    """`chronos echo-server` in a child process; counts the execution ids it was sent."""

    def __init__(self, latency: float) -> None:
        self.port = free_port()
        self.received: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            [CHRONOS, "echo-server", "--port", str(self.port), "--delay", str(latency)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
            if "execution" in fields:
                with self._lock:
                    self.received[fields["execution"]] += 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self._reader.join(10)


@contextmanager
def target(latency: float) -> Iterator[Target]:
    server = Target(latency)
    try:
        yield server
    finally:
        server.close()


def run(workers: int, opts: argparse.Namespace) -> Run:
    finished = (
        "SELECT count(*), min(finished_at), max(finished_at) FROM executions "
        "WHERE finished_at IS NOT NULL"
    )
    with database() as url, namespace() as ns, target(opts.latency) as server:
        migrate(url)
        job = Job.model_validate({"id": "scale", "webhook": {"url": server.url}})
        queue_executions(url, ns, job, opts.jobs)
        args = [CHRONOS, "worker", "--processes", str(workers), "--threads", str(opts.threads)]
        with processes(args, worker_env(url, ns)):
            wait(lambda: count_and_span(url, finished)[0] >= opts.jobs, DRAIN_TIMEOUT_S, "drain")
        _, span = count_and_span(url, finished)
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT e.id::text, e.status, count(a.*) AS attempts FROM executions e "
                "LEFT JOIN attempts a ON a.execution_id = e.id GROUP BY e.id, e.status"
            ).fetchall()
    ids = {row[0] for row in rows}
    lost = {row[0] for row in rows if row[1] != "succeeded"} | (ids - set(server.received))
    doubled = {row[0] for row in rows if row[2] > 1} | {
        i for i, n in server.received.items() if n > 1
    }
    return Run(workers, span, opts.jobs / span, len(lost), len(doubled))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=0.05, help="target seconds/request")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--counts", default="1,2,4,8", help="worker process counts")
    opts = parser.parse_args()
    print(
        f"{opts.jobs} executions, target latency {opts.latency * 1000:g} ms, "
        f"{opts.threads} threads per process, {os.cpu_count()} CPUs",
        flush=True,
    )
    print(
        f"{'processes':>9}  {'seconds':>8}  {'exec/s':>8}  {'ratio':>6}  {'lost':>5}  {'doubled':>7}"
    )
    baseline: float | None = None
    for count in (int(c) for c in opts.counts.split(",")):
        result = run(count, opts)
        baseline = baseline or result.rate
        print(
            f"{result.processes:>9}  {result.seconds:>8.1f}  {result.rate:>8.0f}  "
            f"{result.rate / baseline:>5.2f}x  {result.lost:>5}  {result.doubled:>7}",
            flush=True,
        )


if __name__ == "__main__":
    main()
