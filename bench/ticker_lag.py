"""Scheduling lag of `chronos ticker` with many jobs loaded, against a one-job baseline.

Lag is what each execution row records: enqueued_at - scheduled_at. The loaded run has
`--jobs` jobs (default 10,000), each firing once a minute at its own second (job i at second
i % 60), so every second fires about jobs/60 of them together; the baseline has one
every-second job. Both run against the real Postgres and Redis, each in its own database and
Redis namespace, which are removed afterwards.

    .venv/bin/python bench/ticker_lag.py [--jobs 10000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
# bench scripts are not a package: reuse the pipeline benchmark's fixtures by path.
from pipeline import database, namespace, worker_env

from shared import catalog
from shared.db import Database
from shared.jobs import Job
from shared.migrate import migrate

# Lag is measured from this long after the ticker's first fire, leaving out process start and
# the loading of the jobs.
WARMUP = timedelta(seconds=3)


@dataclass(frozen=True)
class Lag:
    fires: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def jobs(count: int) -> list[Job]:
    target = {"webhook": {"url": "http://127.0.0.1:9/"}}
    if count == 1:
        return [Job.model_validate({"id": "job-0", "schedule": "* * * * * *", **target})]
    return [
        Job.model_validate({"id": f"job-{i}", "schedule": f"{i % 60} * * * * *", **target})
        for i in range(count)
    ]


def run(job_count: int, seconds: float) -> Lag:
    with database() as url, namespace() as ns:
        migrate(url)
        db = Database(url, max_size=1)
        catalog.apply(db, jobs(job_count))
        db.close()
        ticker = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "ticker"], env=worker_env(url, ns)
        )
        time.sleep(seconds)
        ticker.send_signal(signal.SIGTERM)
        ticker.wait(timeout=30)
        with psycopg.connect(url) as conn:
            row = conn.execute(
                """
                SELECT count(*),
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),
                       percentile_cont(0.99) WITHIN GROUP (ORDER BY lag),
                       max(lag)
                FROM (SELECT extract(epoch FROM enqueued_at - scheduled_at) * 1000 AS lag
                      FROM executions
                      WHERE scheduled_at >= (SELECT min(scheduled_at) FROM executions) + %s
                     ) AS fires
                """,
                (WARMUP,),
            ).fetchone()
    assert row is not None and row[0], "no fires recorded"
    return Lag(row[0], row[1], row[2], row[3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    baseline = run(1, args.seconds)
    loaded = run(args.jobs, args.seconds)
    for label, lag in (("1 job", baseline), (f"{args.jobs} jobs", loaded)):
        print(
            f"{label:>12}: {lag.fires:6d} fires  lag p50 {lag.p50_ms:7.1f} ms  "
            f"p99 {lag.p99_ms:7.1f} ms  max {lag.max_ms:7.1f} ms"
        )
    print(
        f"ratio {args.jobs} jobs / 1 job: p50 {loaded.p50_ms / baseline.p50_ms:.1f}x, "
        f"p99 {loaded.p99_ms / baseline.p99_ms:.1f}x"
    )


if __name__ == "__main__":
    main()
