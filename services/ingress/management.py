"""The management API under /api/v1: jobs, triggers and execution history.

Each route is a thin wrapper over the same service functions the CLI calls (`shared.catalog`,
`shared.control`, `shared.store.executions`), so both front ends behave alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Header, Query, Response
from pydantic import BaseModel, JsonValue

from services.ingress import cursor
from services.ingress.auth import require_bearer
from services.ingress.deps import RuntimeDep
from services.ingress.errors import ERROR_RESPONSES, ApiError, ErrorBody
from services.ingress.webhook import Accepted
from shared import catalog, control
from shared.cron import validate_timezone
from shared.errors import NotFoundError
from shared.jobs import Job
from shared.store import executions

MAX_PAGE = 500
MAX_NEXT_FIRES = 1000


def api_token(
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    require_bearer(authorization, runtime.settings.api_token.get_secret_value(), "API_TOKEN")


router = APIRouter(
    prefix="/api/v1",
    tags=["management"],
    dependencies=[Depends(api_token)],
    responses={
        **ERROR_RESPONSES,
        409: {"model": ErrorBody, "description": "The request contradicts the current state."},
    },
)
JobJson = dict[str, Any]


class JobList(BaseModel):
    jobs: list[JobJson]


class TriggerRequest(BaseModel):
    payload: JsonValue = None
    """Payload of this run; omitted or null means the job's own payload."""


class Fire(BaseModel):
    local: datetime
    """In the job's timezone."""
    utc: datetime


class NextFires(BaseModel):
    jobId: str
    timezone: str
    fires: list[Fire]


class ExecutionPage(BaseModel):
    executions: list[dict[str, Any]]
    nextCursor: str | None
    """Pass as `cursor` for the next (older) page; null on the last page."""


class Replayed(Accepted):
    replayOf: UUID


class CancelResult(BaseModel):
    executionId: UUID
    status: str
    """`cancelled`, or `running` while its worker aborts the in-flight attempt."""


@router.get("/jobs", response_model=JobList)
def list_jobs(runtime: RuntimeDep) -> JobList:
    """Every job with its state (paused, version)."""
    return JobList(jobs=[stored.to_json() for stored in catalog.list_jobs(runtime.db)])


@router.post("/jobs", status_code=201, response_model=JobJson)
def create_job(job: Job, runtime: RuntimeDep) -> JobJson:
    """Add a job; 409 if its id is taken."""
    return catalog.create_job(runtime.db, job).to_json()


@router.get("/jobs/{job_id}", response_model=JobJson)
def get_job(job_id: str, runtime: RuntimeDep) -> JobJson:
    return catalog.get_job(runtime.db, job_id).to_json()


@router.put("/jobs/{job_id}", response_model=JobJson, responses={201: {"description": "Created."}})
def replace_job(job_id: str, job: Job, runtime: RuntimeDep, response: Response) -> JobJson:
    """Create or replace a job; its paused state is kept."""
    if job.id != job_id:
        raise ApiError(
            400, "id_mismatch", f"body id {job.id!r} differs from path id {job_id!r}", field="id"
        )
    stored, created = catalog.put_job(runtime.db, job)
    if created:
        response.status_code = 201
    return stored.to_json()


@router.delete("/jobs/{job_id}", status_code=204, response_class=Response)
def delete_job(job_id: str, runtime: RuntimeDep) -> None:
    """Delete a job; its execution history is kept."""
    catalog.delete_job(runtime.db, job_id)


@router.post("/jobs/{job_id}/pause", response_model=JobJson)
def pause_job(job_id: str, runtime: RuntimeDep) -> JobJson:
    """Stop new cron fires and webhooks; executions already queued still run."""
    return catalog.set_paused(runtime.db, job_id, True).to_json()


@router.post("/jobs/{job_id}/resume", response_model=JobJson)
def resume_job(job_id: str, runtime: RuntimeDep) -> JobJson:
    return catalog.set_paused(runtime.db, job_id, False).to_json()


@router.post("/jobs/{job_id}/trigger", status_code=202, response_model=Accepted)
def trigger_job(
    job_id: str, runtime: RuntimeDep, request: Annotated[TriggerRequest | None, Body()] = None
) -> Accepted:
    """Run a job now, like `chronos jobs trigger`."""
    job = catalog.get_job(runtime.db, job_id).job
    payload = request.payload if request is not None else None
    triggered = runtime.triggers.fire(job, "manual", payload=payload)
    return Accepted(jobId=job_id, executionId=triggered.execution_id)


@router.get("/jobs/{job_id}/next", response_model=NextFires)
def next_fires(
    job_id: str,
    runtime: RuntimeDep,
    count: Annotated[int, Query(ge=1, le=MAX_NEXT_FIRES)] = 5,
) -> NextFires:
    """The job's next fire times; 409 if it has no schedule."""
    found = catalog.next_fires(
        runtime.db,
        job_id,
        count,
        default_timezone=runtime.settings.cron_timezone,
        now=datetime.now(UTC),
    )
    tz = validate_timezone(found.timezone)
    return NextFires(
        jobId=job_id,
        timezone=found.timezone,
        fires=[Fire(local=fire.astimezone(tz), utc=fire) for fire in found.fires],
    )


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@router.get("/executions", response_model=ExecutionPage)
def list_executions(
    runtime: RuntimeDep,
    job: str | None = None,
    status: Annotated[Literal[executions.ALL_STATES] | None, Query()] = None,  # type: ignore[valid-type]
    trigger: Annotated[Literal[executions.TRIGGER_KINDS] | None, Query()] = None,  # type: ignore[valid-type]
    since: Annotated[datetime | None, Query(description="Created at or after (ISO-8601).")] = None,
    until: Annotated[datetime | None, Query(description="Created before (ISO-8601).")] = None,
    cursor_: Annotated[str | None, Query(alias="cursor")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> ExecutionPage:
    """Executions, newest first, one page at a time."""
    flt = executions.ExecutionFilter(
        job_id=job,
        status=status,
        trigger=trigger,
        since=_aware(since),
        until=_aware(until),
        before=cursor.decode(cursor_) if cursor_ else None,
        limit=limit + 1,
    )
    with runtime.db.transaction() as conn:
        rows = executions.list_executions(conn, flt)
    page = rows[:limit]
    more = len(rows) > limit
    return ExecutionPage(executions=page, nextCursor=cursor.encode(page[-1]) if more else None)


@router.get("/executions/{execution_id}", response_model=dict[str, Any])
def get_execution(execution_id: UUID, runtime: RuntimeDep) -> dict[str, Any]:
    """One execution with its job snapshot and its attempts (`attempts_detail`)."""
    with runtime.db.transaction() as conn:
        row = executions.get(conn, execution_id)
        if row is None:
            raise NotFoundError("execution", str(execution_id))
        row["attempts_detail"] = executions.attempts_of(conn, execution_id)
    return row


@router.post("/executions/{execution_id}/replay", status_code=202, response_model=Replayed)
def replay_execution(execution_id: UUID, runtime: RuntimeDep) -> Replayed:
    """Run a finished execution again with its job snapshot and payload; 409 while it is live."""
    new_id = control.replay(runtime.db, runtime.triggers, execution_id)
    with runtime.db.transaction() as conn:
        row = executions.get(conn, new_id)
    if row is None:
        raise NotFoundError("execution", str(new_id))
    return Replayed(jobId=row["job_id"], executionId=new_id, replayOf=execution_id)


@router.post("/executions/{execution_id}/cancel", response_model=CancelResult)
def cancel_execution(execution_id: UUID, runtime: RuntimeDep) -> CancelResult:
    """Cancel a pending, queued, retrying or running execution; 409 once it has ended."""
    status = control.cancel(runtime.db, runtime.redis, runtime.settings, execution_id)
    return CancelResult(executionId=execution_id, status=status)
