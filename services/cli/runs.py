"""`chronos runs ...`: execution history."""

from __future__ import annotations

from uuid import UUID

import click

from services.cli.context import CliContext, echo_json, echo_table
from shared.errors import NotFoundError
from shared.store import executions


@click.group()
def runs() -> None:
    """Inspect executions and their attempts."""


@runs.command("list")
@click.option("--job", "job_id", help="Only this job's executions.")
@click.option("--status", type=click.Choice(executions.ALL_STATES), help="Only this status.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_(
    obj: CliContext, job_id: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """List executions, newest first."""
    flt = executions.ExecutionFilter(job_id=job_id, status=status, limit=limit)
    with obj.runtime.db.transaction() as conn:
        rows = executions.list_executions(conn, flt)
    if as_json:
        echo_json(rows)
        return
    echo_table(
        ["ID", "JOB", "TRIGGER", "STATUS", "ATTEMPTS", "SCHEDULED"],
        [
            (
                r["id"],
                r["job_id"],
                r["trigger"],
                r["status"],
                r["attempts"],
                r["scheduled_at"].isoformat(),
            )
            for r in rows
        ],
    )


@runs.command()
@click.argument("execution_id", type=click.UUID)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def get(obj: CliContext, execution_id: UUID, as_json: bool) -> None:
    """Show one execution with its attempts."""
    with obj.runtime.db.transaction() as conn:
        row = executions.get(conn, execution_id)
        if row is None:
            raise NotFoundError("execution", str(execution_id))
        row["attempts_detail"] = executions.attempts_of(conn, execution_id)
    if as_json:
        echo_json(row)
        return
    for key in (
        "id",
        "job_id",
        "trigger",
        "status",
        "status_reason",
        "scheduled_at",
        "started_at",
        "finished_at",
        "attempts",
        "error",
        "result",
    ):
        if row.get(key) is not None:
            click.echo(f"{key:14} {row[key]}")
    if row["attempts_detail"]:
        click.echo("")
        echo_table(
            ["#", "OUTCOME", "CODE", "MS", "ERROR"],
            [
                (
                    a["attempt"],
                    a["outcome"],
                    a["status_code"],
                    None if a["duration_ms"] is None else round(a["duration_ms"]),
                    a["error_message"],
                )
                for a in row["attempts_detail"]
            ],
        )


@runs.command()
@click.argument("execution_id", type=click.UUID)
@click.pass_obj
def cancel(obj: CliContext, execution_id: UUID) -> None:
    """Cancel a pending, queued, retrying or running execution."""
    from shared.control import cancel as cancel_execution

    rt = obj.runtime
    status = cancel_execution(rt.db, rt.redis, obj.settings, execution_id)
    if status == "running":
        click.echo(f"cancel requested: {execution_id} (its in-flight attempt is being aborted)")
    else:
        click.echo(f"cancelled {execution_id}")


@runs.command()
@click.argument("execution_id", type=click.UUID)
@click.pass_obj
def replay(obj: CliContext, execution_id: UUID) -> None:
    """Run a finished (e.g. failed) execution again with the same job snapshot and payload;
    print the new execution id."""
    from shared.control import replay as replay_execution

    click.echo(str(replay_execution(obj.runtime.db, obj.runtime.triggers, execution_id)))
