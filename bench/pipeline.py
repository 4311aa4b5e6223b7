"""End-to-end delivery throughput of `chronos worker` against a naive pipeline, same run.

Both pipelines drain `--jobs` queued jobs with `--processes` worker processes of `--threads`
threads each, POSTing to an nginx `return 200` on a loopback port (so the pipeline, not the
target, is measured), over the Redis broker and the real Postgres:

- naive: a Dramatiq actor doing a sync httpx POST and one autocommit INSERT per job
  (bench/naive_pipeline.py);
- chronos: executions created through the trigger path, then claimed, delivered, recorded
  with an attempt row and finished by the workers.

Throughput is jobs over the span between the first and the last recorded completion, so
process start-up is left out of both. CPU per job is the worker processes' own CPU time (user +
system) over the middle 80% of the drain, divided by the jobs finished in it: steadier than
throughput on a shared machine, and it leaves out what Postgres, Redis and nginx spend. Each
pipeline gets its own database and Redis namespace, removed afterwards.

    .venv/bin/python bench/pipeline.py [--jobs 5000] [--processes 2] [--threads 8]

Needs nginx (Debian: `apt-get install nginx-light`).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import psycopg
import redis

from shared.jobs import Job
from shared.migrate import migrate
from shared.runtime import Runtime
from shared.settings import load_settings

ADMIN_URL = os.environ.get(
    "CHRONOS_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("CHRONOS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BENCH_DIR = Path(__file__).resolve().parent
DRAIN_TIMEOUT_S = 120
CHRONOS = str(Path(sys.executable).with_name("chronos"))

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir};
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 1000000;
        location / {{ return 200 '{{"status":"ok","message":"done","data":null}}'; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def nginx() -> Iterator[str]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=tmp, port=port))
        proc = subprocess.Popen([binary, "-c", str(conf), "-p", tmp], stderr=subprocess.DEVNULL)
        try:
            wait(lambda: _listening(port), 10, "nginx")
            yield f"http://127.0.0.1:{port}/hook"
        finally:
            proc.terminate()
            proc.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def database() -> Iterator[str]:
    name = f"chronos_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def namespace() -> Iterator[str]:
    ns = f"bench{secrets.token_hex(4)}"
    try:
        yield ns
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{ns}*", count=1000):
            client.delete(key)
        client.close()


@contextmanager
def processes(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run worker processes; their output goes to bench-workers.log in the temp directory."""
    log = (Path(tempfile.gettempdir()) / "bench-workers.log").open("ab")
    proc = subprocess.Popen(
        args, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=log
    )
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def count_and_span(url: str, query: str) -> tuple[int, float]:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    n, first, last = row
    return int(n), (last - first).total_seconds() if n else 0.0


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants so far."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


@dataclass(frozen=True)
class Drain:
    rate: float  # jobs per second
    cpu_us: float  # worker CPU microseconds per job


def drain(url: str, query: str, jobs: int, workers: subprocess.Popen[bytes], what: str) -> Drain:
    """Wait for `jobs` completions, sampling the workers' CPU between 10% and 90% of them."""

    def done() -> int:
        return count_and_span(url, query)[0]

    wait(lambda: done() >= jobs // 10, DRAIN_TIMEOUT_S, what)
    n0, cpu0 = done(), tree_cpu_seconds(workers.pid)
    wait(lambda: done() >= jobs * 9 // 10, DRAIN_TIMEOUT_S, what)
    n1, cpu1 = done(), tree_cpu_seconds(workers.pid)
    wait(lambda: done() >= jobs, DRAIN_TIMEOUT_S, what)
    n, span = count_and_span(url, query)
    return Drain(rate=n / span, cpu_us=(cpu1 - cpu0) / max(1, n1 - n0) * 1e6)


def worker_args(module: str, opts: argparse.Namespace) -> list[str]:
    return [
        sys.executable, "-m", "dramatiq", module,
        "--processes", str(opts.processes), "--threads", str(opts.threads),
    ]  # fmt: skip


def run_naive(opts: argparse.Namespace, target: str) -> Drain:
    with database() as url, namespace() as ns:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE naive_results (job_id text, status_code int, "
                "at timestamptz NOT NULL DEFAULT clock_timestamp())"
            )
        queue = f"{ns}.naive"
        env = {
            **os.environ,
            "NAIVE_REDIS_URL": REDIS_URL,
            "NAIVE_NAMESPACE": ns,
            "NAIVE_QUEUE": queue,
            "NAIVE_DATABASE_URL": url,
            "NAIVE_TARGET": target,
            "PYTHONPATH": str(BENCH_DIR),
        }
        os.environ.update({k: env[k] for k in env if k.startswith("NAIVE_")})
        sys.path.insert(0, str(BENCH_DIR))
        import naive_pipeline

        for i in range(opts.jobs):
            naive_pipeline.deliver.send(str(i))
        query = "SELECT count(*), min(at), max(at) FROM naive_results"
        with processes(worker_args("naive_pipeline", opts), env) as workers:
            return drain(url, query, opts.jobs, workers, "naive")


def queue_executions(url: str, ns: str, job: Job, count: int) -> None:
    """Create and enqueue `count` executions of `job` through the trigger path, as cron fires
    one second apart, in batches."""
    settings = load_settings(
        database_url=url, redis_url=REDIS_URL, broker_url=REDIS_URL, chronos_namespace=ns
    )
    runtime = Runtime(settings)
    try:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        fires = [(job, start + timedelta(seconds=i)) for i in range(count)]
        for chunk in range(0, count, 1000):
            runtime.triggers.fire_cron(fires[chunk : chunk + 1000])
    finally:
        runtime.close()


def worker_env(url: str, ns: str) -> dict[str, str]:
    """The environment of `chronos worker` processes draining that database and namespace."""
    return {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_URL,
        "BROKER_URL": REDIS_URL,
        "CHRONOS_NAMESPACE": ns,
        "LOG_LEVEL": "warning",
    }


def run_chronos(opts: argparse.Namespace, target: str) -> Drain:
    with database() as url, namespace() as ns:
        migrate(url)
        job = Job.model_validate({"id": "bench", "webhook": {"url": target}})
        queue_executions(url, ns, job, opts.jobs)
        query = (
            "SELECT count(*), min(finished_at), max(finished_at) FROM executions "
            "WHERE status = 'succeeded'"
        )
        args = [CHRONOS, "worker", "--processes", str(opts.processes)]
        with processes([*args, "--threads", str(opts.threads)], worker_env(url, ns)) as workers:
            result = drain(url, query, opts.jobs, workers, "chronos")
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM attempts WHERE outcome = 'succeeded'")
            attempts = row.fetchone()
        assert attempts is not None and attempts[0] == opts.jobs, attempts
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    opts = parser.parse_args()
    with nginx() as target:
        naive = run_naive(opts, target)
        print(
            f"naive pipeline:   {naive.rate:8.0f} jobs/s  {naive.cpu_us:6.0f} us CPU/job",
            flush=True,
        )
        chronos = run_chronos(opts, target)
        print(
            f"chronos pipeline: {chronos.rate:8.0f} jobs/s  {chronos.cpu_us:6.0f} us CPU/job",
            flush=True,
        )
    print(
        f"ratio chronos/naive: throughput {chronos.rate / naive.rate:.2f}x, "
        f"worker CPU per job {chronos.cpu_us / naive.cpu_us:.2f}x"
    )


if __name__ == "__main__":
    main()
