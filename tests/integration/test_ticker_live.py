"""A running `chronos ticker` process against real Postgres and Redis: live job changes,
misfire policies after an outage, and `chronos jobs next`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shared import catalog
from shared.jobs import Job
from shared.runtime import Runtime

DEADLINE_S = 15.0
# How soon a job change must reach a running ticker.
REACH = timedelta(seconds=2)


def job(job_id: str, schedule: str, **fields: Any) -> Job:
    return Job.model_validate(
        {"id": job_id, "schedule": schedule, "webhook": {"url": "http://127.0.0.1:9/"}, **fields}
    )


def fires(url: str, job_id: str) -> list[datetime]:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT scheduled_at FROM executions WHERE job_id = %s AND trigger = 'cron' "
            "ORDER BY scheduled_at",
            (job_id,),
        ).fetchall()
    return [r[0] for r in found]


def wait_for(check: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def ticker_env(settings_env: dict[str, str]) -> dict[str, str]:
    return {**settings_env, "TICKER_LOCK_TTL": "1s", "LOG_LEVEL": "info"}


@pytest.fixture
def start_ticker(
    ticker_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        log = (tmp_path / f"ticker-{len(started)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "ticker"],
            env=ticker_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            assert proc.wait(timeout=10) == 0
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            raise


@pytest.mark.slow
def test_live_apply_edit_pause_resume_delete_reach_a_running_ticker(
    start_ticker: Callable[[], subprocess.Popen[bytes]], runtime: Runtime, database: str
) -> None:
    start_ticker()
    # A far-future schedule first: applying it must not fire anything.
    catalog.apply(runtime.db, [job("live", "0 0 1 1 *")])
    time.sleep(1.5)
    assert fires(database, "live") == []

    # Edit to every second: the running ticker picks it up without a restart.
    edited_at = datetime.now(UTC)
    catalog.apply(runtime.db, [job("live", "* * * * * *")])
    wait_for(lambda: len(fires(database, "live")) >= 3, "fires after the schedule edit")
    seen = fires(database, "live")
    # The edit reaches the ticker within a second or two, and it fires from the next second on.
    assert edited_at < seen[0] <= edited_at + REACH + timedelta(seconds=1)
    assert all(b - a == timedelta(seconds=1) for a, b in pairwise(seen))

    # Paused: no fire scheduled later than a moment after the pause.
    catalog.set_paused(runtime.db, "live", True)
    paused_at = datetime.now(UTC)
    time.sleep(3)
    assert [t for t in fires(database, "live") if t > paused_at + timedelta(seconds=1)] == []

    resumed_at = datetime.now(UTC)
    catalog.set_paused(runtime.db, "live", False)
    wait_for(lambda: any(t > resumed_at for t in fires(database, "live")), "fires after resume")
    # Nothing was caught up for the paused seconds.
    assert [
        t for t in fires(database, "live") if paused_at + timedelta(seconds=1) < t < resumed_at
    ] == []

    # Every two seconds: only even seconds from then on.
    catalog.apply(runtime.db, [job("live", "*/2 * * * * *")])
    switched_at = datetime.now(UTC) + timedelta(seconds=1)
    wait_for(
        lambda: len([t for t in fires(database, "live") if t > switched_at]) >= 2,
        "fires on the new schedule",
    )
    assert {t.second % 2 for t in fires(database, "live") if t > switched_at} == {0}

    catalog.delete_job(runtime.db, "live")
    deleted_at = datetime.now(UTC)
    time.sleep(3)
    assert [t for t in fires(database, "live") if t > deleted_at + timedelta(seconds=1)] == []


@pytest.mark.slow
def test_misfire_policies_after_a_ten_minute_outage(
    start_ticker: Callable[[], subprocess.Popen[bytes]], runtime: Runtime, database: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    # A once-a-minute schedule whose latest fire was 30 s ago, so no fire is near "now".
    second = (now.second + 30) % 60
    latest = now - timedelta(seconds=30)
    last = latest - timedelta(minutes=10)
    schedule = f"{second} * * * * *"
    policies = {
        "skip": {},
        "once": {"misfire_policy": "run_once"},
        "once-deadline-10s": {"misfire_policy": "run_once", "starting_deadline": "10s"},
        "all": {"misfire_policy": "run_all"},
        "all-deadline-5m": {"misfire_policy": "run_all", "starting_deadline": "5m"},
    }
    catalog.apply(
        runtime.db,
        [job(name, schedule, **fields) for name, fields in policies.items()]
        + [job("canary", "* * * * * *")],
    )
    with psycopg.connect(database) as conn:
        conn.execute(
            "INSERT INTO schedule_state (job_id, last_scheduled_at) "
            "SELECT id, %s FROM jobs WHERE id <> 'canary'",
            (last,),
        )

    start_ticker()
    # Catch-up fires are created in the same turn as the ticker's first fire.
    wait_for(lambda: bool(fires(database, "canary")), "the ticker to fire")
    time.sleep(0.5)

    def minutes_before_latest(*values: int) -> list[datetime]:
        return [latest - timedelta(minutes=m) for m in values]

    assert fires(database, "skip") == []
    assert fires(database, "once") == [latest]
    assert fires(database, "once-deadline-10s") == []
    assert fires(database, "all") == minutes_before_latest(*range(9, -1, -1))
    assert fires(database, "all-deadline-5m") == minutes_before_latest(4, 3, 2, 1, 0)
    with psycopg.connect(database) as conn:
        remembered: dict[str, datetime] = dict(
            conn.execute("SELECT job_id, last_scheduled_at FROM schedule_state").fetchall()
        )
    assert remembered["once"] == latest
    assert remembered["skip"] == last


@pytest.mark.slow
def test_job_changes_still_arrive_after_the_listen_connection_is_lost(
    start_ticker: Callable[[], subprocess.Popen[bytes]], runtime: Runtime, database: str
) -> None:
    start_ticker()
    catalog.apply(runtime.db, [job("before", "* * * * * *")])
    wait_for(lambda: bool(fires(database, "before")), "the ticker to fire")
    with psycopg.connect(database, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        ).fetchall()
    assert killed == [(True,)]

    catalog.apply(runtime.db, [job("before", "* * * * * *"), job("after", "* * * * * *")])
    wait_for(lambda: bool(fires(database, "after")), "a job applied after the connection loss")


def chronos(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True
    )


def test_jobs_next_prints_local_and_utc_times(
    settings_env: dict[str, str], runtime: Runtime
) -> None:
    catalog.apply(
        runtime.db,
        [
            job("ny", "0 9 * * *", timezone="America/New_York"),
            job("utc-default", "30 6 * * *"),
            Job.model_validate({"id": "manual-only", "webhook": {"url": "http://127.0.0.1:9/"}}),
        ],
    )
    shown = chronos(settings_env, "jobs", "next", "ny", "-n", "3")
    assert shown.returncode == 0, shown.stderr
    header, *lines = shown.stdout.splitlines()
    assert header.split() == ["America/New_York", "UTC"]
    assert len(lines) == 3
    for line in lines:
        local, universal = line.split()
        local_time = datetime.fromisoformat(local)
        assert (local_time.hour, local_time.minute) == (9, 0)
        assert datetime.fromisoformat(universal) == local_time

    default = chronos(
        {**settings_env, "CRON_TIMEZONE": "Asia/Tokyo"}, "jobs", "next", "utc-default"
    )
    assert default.returncode == 0, default.stderr
    assert default.stdout.splitlines()[0].split() == ["Asia/Tokyo", "UTC"]
    assert len(default.stdout.splitlines()) == 6
    assert all("T06:30:00+09:00" in line for line in default.stdout.splitlines()[1:])

    missing = chronos(settings_env, "jobs", "next", "nope")
    assert missing.returncode == 1
    assert "job 'nope' not found" in missing.stderr
    unscheduled = chronos(settings_env, "jobs", "next", "manual-only")
    assert unscheduled.returncode == 1
    assert "has no schedule" in unscheduled.stderr
