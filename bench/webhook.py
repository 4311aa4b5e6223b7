"""Intake of `chronos ingress`: webhooks/s and latency of POST /webhook at a fixed concurrency.

Each request commits an execution row and enqueues its message (no worker runs, so the queue
only grows). The baseline is GET /_health on the same server in the same run: the ratio shows
what the trigger path costs over the HTTP stack alone. Runs against the real Postgres and
Redis, in its own database and Redis namespace, both removed afterwards.

    .venv/bin/python bench/webhook.py [--concurrency 16] [--seconds 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
# bench scripts are not a package: reuse the pipeline benchmark's fixtures by path.
from pipeline import CHRONOS, database, free_port, namespace, worker_env

from shared import catalog
from shared.db import Database
from shared.jobs import Job
from shared.migrate import migrate

WARMUP_S = 1.0


@dataclass(frozen=True)
class Result:
    requests: int
    errors: int
    per_second: float
    p50_ms: float
    p99_ms: float


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def load(
    url: str, method: str, body: dict[str, Any] | None, concurrency: int, seconds: float
) -> Result:
    """`concurrency` clients, each sending its next request as soon as the last one answers."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    start = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def client(i: int) -> None:
        with httpx.Client(timeout=30) as http:
            start.wait()
            while (now := time.perf_counter()) < stop_at[0]:
                response = http.request(method, url, json=body)
                elapsed = time.perf_counter() - now
                if now >= stop_at[0] - seconds:
                    latencies[i].append(elapsed)
                    if response.status_code >= 300:
                        errors[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + WARMUP_S + seconds
    start.wait()
    for thread in threads:
        thread.join()
    merged = sorted(x for per in latencies for x in per)
    return Result(
        requests=len(merged),
        errors=sum(errors),
        per_second=len(merged) / seconds,
        p50_ms=_percentile(merged, 0.50) * 1000,
        p99_ms=_percentile(merged, 0.99) * 1000,
    )


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("chronos ingress exited")
        try:
            if httpx.get(f"{url}/_health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("chronos ingress did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="ingress server processes")
    args = parser.parse_args()

    with database() as database_url, namespace() as ns:
        migrate(database_url)
        db = Database(database_url, max_size=1)
        job = Job.model_validate({"id": "bench", "webhook": {"url": "http://127.0.0.1:9/"}})
        catalog.apply(db, [job])
        db.close()
        measure(database_url, ns, args)


def measure(database_url: str, ns: str, args: argparse.Namespace) -> None:
    process = None
    try:
        port = free_port()
        process = subprocess.Popen(
            [CHRONOS, "ingress", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(args.workers)],
            env=worker_env(database_url, ns),
            start_new_session=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, process)

        health = load(f"{url}/_health", "GET", None, args.concurrency, args.seconds)
        webhook = load(
            f"{url}/webhook",
            "POST",
            {"jobId": "bench", "payload": {"n": 1}},
            args.concurrency,
            args.seconds,
        )
        print(
            f"ingress: {args.workers} processes, {args.concurrency} concurrent clients, "
            f"{args.seconds:g}s each"
        )
        for label, result in (("GET /_health (baseline)", health), ("POST /webhook", webhook)):
            print(
                f"  {label:24} {result.per_second:8.0f} req/s   p50 {result.p50_ms:6.1f} ms   "
                f"p99 {result.p99_ms:6.1f} ms   errors {result.errors}"
            )
        print(
            f"  webhook / baseline: {webhook.per_second / health.per_second:.2f}x throughput, "
            f"p50 {webhook.p50_ms / health.p50_ms:.1f}x"
        )
    finally:
        if process is not None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
