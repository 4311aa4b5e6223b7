"""`chronos dev`: ticker, ingress and workers on one machine, for trying Chronos out.

The services run as the same `chronos ticker|ingress|worker` processes as in production. What
`DATABASE_URL` / `REDIS_URL` do not name is started here as a real, embedded server under the
data folder, so a second start finds the jobs, executions and queued messages of the first.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import click
import httpx

from services.cli.embedded import EmbeddedPostgres, EmbeddedRedis
from services.cli.supervisor import Supervisor
from shared import catalog
from shared.db import Database
from shared.jobs import Job
from shared.jobsfile import load_jobs_file
from shared.migrate import migrate
from shared.settings import Settings, load_settings

READY_TIMEOUT = timedelta(seconds=60)
READY_POLL = timedelta(milliseconds=200)


@click.command()
@click.option(
    "--jobs",
    "jobs_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Jobs file to apply at start (YAML or JSON).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".chronos"),
    show_default=True,
    help="Where the embedded Postgres and Redis keep their data.",
)
@click.option("--port", type=click.IntRange(1, 65535), help="API port (default: PORT, else 3000).")
@click.option(
    "--echo/--no-echo",
    default=False,
    help="Also run `chronos echo-server`, the target of examples/jobs.yaml.",
)
@click.option("--echo-port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--worker-processes", type=click.IntRange(1, 64), default=1, show_default=True)
def dev(
    jobs_file: Path | None,
    data_dir: Path,
    port: int | None,
    echo: bool,
    echo_port: int,
    worker_processes: int,
) -> None:
    """Run ticker, ingress and workers together, with embedded Postgres and Redis when
    DATABASE_URL / REDIS_URL are not set. Ctrl-C stops everything."""
    settings = load_settings()
    # A broken jobs file fails here, before anything is started.
    jobs = load_jobs_file(jobs_file) if jobs_file else []
    data_dir = data_dir.resolve()
    with ExitStack() as cleanup:
        overrides: dict[str, str] = {}
        if "database_url" not in settings.model_fields_set:
            click.echo(f"starting embedded Postgres in {data_dir / 'postgres'}")
            postgres = EmbeddedPostgres.start(data_dir / "postgres")
            cleanup.callback(postgres.stop)
            overrides["database_url"] = postgres.url
        if "redis_url" not in settings.model_fields_set:
            click.echo(f"starting embedded Redis in {data_dir / 'redis'}")
            redis_server = EmbeddedRedis(data_dir / "redis")
            cleanup.callback(redis_server.stop)
            overrides["redis_url"] = redis_server.start()
        if port is not None:
            overrides["port"] = str(port)
        settings = load_settings(**overrides)
        _prepare(settings, jobs)

        supervisor = Supervisor(_child_env(settings, overrides))
        supervisor.handle_signals()
        cleanup.callback(supervisor.stop_all)
        if echo:
            supervisor.spawn("echo-server", "echo-server", "--port", str(echo_port))
        supervisor.spawn("worker", "worker", "--processes", str(worker_processes))
        supervisor.spawn("ticker", "ticker")
        supervisor.spawn("ingress", "ingress")
        if _wait_ready(settings, supervisor):
            _banner(settings, jobs, data_dir, echo_port if echo else None)
        dead = supervisor.wait()
        click.echo("stopping")
    if dead is not None:
        raise click.ClickException(
            f"chronos {dead.name} exited with code {dead.process.returncode}; stopped the rest"
        )
    click.echo("stopped")


def _prepare(settings: Settings, jobs: list[Job]) -> None:
    applied = migrate(settings.database_url)
    click.echo(f"migrations: applied {', '.join(applied)}" if applied else "schema is up to date")
    if not jobs:
        return
    db = Database(settings.database_url, max_size=1)
    try:
        click.echo(f"jobs: {catalog.apply(db, jobs).summary()}")
    finally:
        db.close()


def _child_env(settings: Settings, overrides: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update({name.upper(): value for name, value in overrides.items()})
    if "log_format" not in settings.model_fields_set:
        env["LOG_FORMAT"] = "console"
    return env


def _wait_ready(settings: Settings, supervisor: Supervisor) -> bool:
    """Poll the ingress health check until it answers, a child dies, or Ctrl-C."""
    url = f"http://127.0.0.1:{settings.port}/_health"
    deadline = time.monotonic() + READY_TIMEOUT.total_seconds()
    while time.monotonic() < deadline:
        if supervisor.stopping.is_set() or supervisor.exited() is not None:
            return False
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(READY_POLL.total_seconds())
    click.echo(f"warning: {url} did not answer within {READY_TIMEOUT}", err=True)
    return False


def webhook_curl(settings: Settings, job_id: str) -> str:
    """The documented way to start a job from the shell."""
    body = json.dumps({"jobId": job_id, "payload": {"hello": "world"}})
    parts = [
        "curl",
        "-sS",
        "-X",
        "POST",
        f"http://127.0.0.1:{settings.port}/webhook",
        "-H",
        "Content-Type: application/json",
    ]
    line = shlex.join([*parts, "-d", body])
    if settings.webhook_secret.get_secret_value():
        line += ' -H "Authorization: Bearer $WEBHOOK_SECRET"'
    return line


def _webhook_job(jobs: list[Job]) -> str | None:
    """A job meant to be started by a webhook: one without a schedule if there is one."""
    open_jobs = [job for job in jobs if job.trigger.webhook_enabled]
    unscheduled = [job for job in open_jobs if job.schedule is None]
    return next((job.id for job in unscheduled or open_jobs), None)


def _banner(settings: Settings, jobs: list[Job], data_dir: Path, echo_port: int | None) -> None:
    api = f"http://127.0.0.1:{settings.port}"
    lines = [
        "",
        f"Chronos is running. Data: {data_dir}. Ctrl-C stops everything.",
        f"  API       {api}  (health {api}/_health, metrics {api}/metrics)",
        f"  Postgres  {settings.database_url}",
        f"  Redis     {settings.redis_url}",
    ]
    if echo_port is not None:
        lines.append(f"  Target    http://127.0.0.1:{echo_port}  (prints each delivery below)")
    job_id = _webhook_job(jobs)
    if job_id is not None:
        lines += ["Post a webhook:", f"  {webhook_curl(settings, job_id)}"]
    click.echo("\n".join([*lines, ""]))
