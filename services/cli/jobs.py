"""`chronos jobs ...`: validate, apply and inspect job definitions."""

from __future__ import annotations

import json
from pathlib import Path

import click

from services.cli.context import CliContext, echo_json, echo_table, parse_json_option
from shared import catalog
from shared.jobsfile import jobs_file_schema, load_jobs_file

_FILE = click.option(
    "-f",
    "--file",
    "path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Jobs file (YAML or JSON) with a top-level `jobs:` list.",
)


@click.group()
def jobs() -> None:
    """Manage job definitions."""


@jobs.command()
@_FILE
def validate(path: Path) -> None:
    """Check a jobs file; print every problem with its job id and field."""
    loaded = load_jobs_file(path)
    click.echo(f"{path}: {len(loaded)} jobs valid")


@jobs.command()
@_FILE
@click.option("--prune", is_flag=True, help="Delete jobs that are not in the file.")
@click.pass_obj
def apply(obj: CliContext, path: Path, prune: bool) -> None:
    """Create or update the jobs of a file in one transaction."""
    loaded = load_jobs_file(path)
    report = catalog.apply(obj.runtime.db, loaded, prune=prune)
    for label in ("created", "updated", "deleted"):
        for job_id in getattr(report, label):
            click.echo(f"{label:8} {job_id}")
    click.echo(report.summary())


@jobs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_(obj: CliContext, as_json: bool) -> None:
    """List jobs."""
    stored = catalog.list_jobs(obj.runtime.db)
    if as_json:
        echo_json([s.to_json() for s in stored])
        return
    echo_table(
        ["ID", "TARGET", "SCHEDULE", "STATE"],
        [
            (
                s.job.id,
                s.job.target_kind,
                s.job.schedule or "-",
                "paused" if s.paused else ("enabled" if s.job.enabled else "disabled"),
            )
            for s in stored
        ],
    )


@jobs.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def get(obj: CliContext, job_id: str, as_json: bool) -> None:
    """Show one job's definition."""
    stored = catalog.get_job(obj.runtime.db, job_id)
    if as_json:
        echo_json(stored.to_json())
    else:
        import yaml

        click.echo(yaml.safe_dump(stored.to_json(), sort_keys=False).rstrip())


@jobs.command()
@click.argument("job_id")
@click.pass_obj
def delete(obj: CliContext, job_id: str) -> None:
    """Delete a job (its execution history is kept)."""
    catalog.delete_job(obj.runtime.db, job_id)
    click.echo(f"deleted {job_id}")


@jobs.command()
def schema() -> None:
    """Print the JSON Schema of a jobs file."""
    click.echo(json.dumps(jobs_file_schema(), indent=2))


@jobs.command()
@click.argument("job_id")
@click.option("--payload", help="JSON payload for this run (default: the job's payload).")
@click.pass_obj
def trigger(obj: CliContext, job_id: str, payload: str | None) -> None:
    """Run a job now; print the execution id."""
    body = parse_json_option(payload, "--payload")
    stored = catalog.get_job(obj.runtime.db, job_id)
    triggered = obj.runtime.triggers.fire(stored.job, "manual", payload=body)
    click.echo(str(triggered.execution_id))


@jobs.command("next")
@click.argument("job_id")
@click.option("-n", "count", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.pass_obj
def next_(obj: CliContext, job_id: str, count: int) -> None:
    """Show a job's next fire times, in its timezone and in UTC."""
    from services.ticker.cli import next_fires

    zone, fires = next_fires(obj.runtime, obj.settings, job_id, count)
    echo_table([zone, "UTC"], fires)


@jobs.command()
@click.argument("job_id")
@click.pass_obj
def pause(obj: CliContext, job_id: str) -> None:
    """Stop new cron fires and webhooks of a job; executions already queued still run."""
    catalog.set_paused(obj.runtime.db, job_id, True)
    click.echo(f"paused {job_id}")


@jobs.command()
@click.argument("job_id")
@click.pass_obj
def resume(obj: CliContext, job_id: str) -> None:
    """Let a paused job fire and accept webhooks again."""
    catalog.set_paused(obj.runtime.db, job_id, False)
    click.echo(f"resumed {job_id}")
