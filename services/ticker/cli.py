"""`chronos ticker` and `chronos jobs next`: the ticker's commands."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from shared import catalog
from shared.cron import validate_timezone
from shared.runtime import Runtime
from shared.settings import Settings


@click.command()
def ticker() -> None:
    """Run the scheduler: fire cron jobs on time (run two or three for availability)."""
    from services.ticker.main import main

    main()


def next_fires(
    runtime: Runtime, settings: Settings, job_id: str, count: int
) -> tuple[str, list[tuple[str, str]]]:
    """For `chronos jobs next`: the job's timezone, and its next fires in that zone and in UTC."""
    job = catalog.get_job(runtime.db, job_id).job
    schedule = job.cron
    if schedule is None:
        raise click.ClickException(f"job {job_id!r} has no schedule")
    zone_name = job.timezone or settings.cron_timezone
    tz = validate_timezone(zone_name)
    fires = schedule.next_fires(datetime.now(UTC), tz, count)
    return zone_name, [
        (fire.astimezone(tz).isoformat(), fire.strftime("%Y-%m-%dT%H:%M:%SZ")) for fire in fires
    ]
