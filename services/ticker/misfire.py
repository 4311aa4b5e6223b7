"""Which fires to create for a job whose fire times went by while no ticker fired them. Pure.

A fire less than `grace` late is only late, not missed: it is created whatever the policy. The
grace is longer than a leader takeover, so a replica that takes over after the leader died
fires the seconds in between instead of dropping them.

Older fires are misfires, and the job's `misfire_policy` decides:
- `skip`: none; the job resumes at its next future time.
- `run_once`: one fire, for the latest missed time.
- `run_all`: every missed time, newest `MAX_CATCH_UP` at most (as Kubernetes CronJobs do).
A `starting_deadline` drops misfires older than `now - starting_deadline` under either policy.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from shared.cron import CronSchedule

MisfirePolicy = Literal["skip", "run_once", "run_all"]

MAX_CATCH_UP = 100


def catch_up(
    schedule: CronSchedule,
    tz: ZoneInfo,
    *,
    last: datetime,
    now: datetime,
    policy: MisfirePolicy,
    starting_deadline: timedelta | None,
    grace: timedelta,
) -> list[datetime]:
    """The fire times in (last, now] to create now, oldest first."""
    late_since = now - grace
    oldest_allowed = now - starting_deadline if starting_deadline is not None else None
    limit = {"skip": 0, "run_once": 1, "run_all": MAX_CATCH_UP}[policy]
    late: list[datetime] = []
    missed: list[datetime] = []
    # Newest first, so a job that missed a million fires costs at most `limit` steps past grace.
    for fire in schedule.iter_before(now, tz):
        if fire <= last:
            break
        if fire >= late_since:
            late.append(fire)
            continue
        if len(missed) >= limit or (oldest_allowed is not None and fire < oldest_allowed):
            break
        missed.append(fire)
    return sorted(missed + late)
