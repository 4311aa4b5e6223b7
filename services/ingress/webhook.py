"""`POST /webhook` and `POST /webhooks/{job_id}`: turn an HTTP call into an accepted execution.

Both answer 202 only after the shared trigger path has committed the execution row and the
broker holds its message; anything less answers an error and leaves nothing behind.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, JsonValue

from services.ingress.auth import bearer_error, verify_signature
from services.ingress.dedupe import Dedupe, delivery_id
from services.ingress.deps import DedupeDep, RawBody, RuntimeDep
from services.ingress.errors import ERROR_RESPONSES, ApiError, ErrorBody
from shared import catalog
from shared.errors import ChronosError, NotFoundError
from shared.jobs import JOB_ID_PATTERN
from shared.runtime import Runtime
from shared.triggers import webhook_key

_JOB_ID = re.compile(JOB_ID_PATTERN)


class WebhookRequest(BaseModel):
    jobId: str = Field(pattern=JOB_ID_PATTERN)
    """Id of the job to run."""
    payload: JsonValue = None
    """Payload of this execution; omitted or null means the job's own payload."""


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    jobId: str
    executionId: UUID
    """The execution that runs (or, for a repeated delivery id, ran) this call."""


WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    409: {"model": ErrorBody, "description": "The job is paused or disabled."},
}

router = APIRouter(tags=["webhooks"], responses=WEBHOOK_RESPONSES)


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        raise ApiError(400, "invalid_json", "request body is empty; send a JSON document")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "request body is nested too deeply") from None


def _job_id_of(document: Any) -> str:
    if not isinstance(document, dict):
        raise ApiError(
            400, "invalid_body", 'body must be a JSON object: {"jobId": "...", "payload": {...}}'
        )
    if "jobId" not in document:
        raise ApiError(400, "missing_field", "jobId is required", field="jobId")
    job_id = document["jobId"]
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise ApiError(
            400,
            "invalid_field",
            "jobId must be a string of letters, digits, '.', '_' or '-' (at most 128)",
            field="jobId",
        )
    return job_id


def accept(
    runtime: Runtime,
    dedupe: Dedupe,
    job_id: str,
    payload: Any,
    body: bytes,
    headers: dict[str, str],
) -> Accepted:
    """Authenticate, check the job, then fire once per delivery id.

    A job with a signature scheme is authenticated by its signature (GitHub and Standard
    Webhooks senders cannot add a bearer token); any other job needs the WEBHOOK_SECRET bearer.
    Without a valid bearer, an unknown job answers 401, not 404, so job ids cannot be probed.
    """
    denied = bearer_error(
        headers.get("authorization"),
        runtime.settings.webhook_secret.get_secret_value(),
        "WEBHOOK_SECRET",
    )
    try:
        stored = catalog.get_job(runtime.db, job_id) if _JOB_ID.match(job_id) else None
    except NotFoundError:
        stored = None
    signed = stored is not None and stored.job.trigger.signature != "none"
    if denied is not None and not signed:
        raise denied
    if stored is None:
        raise ApiError(404, "unknown_job", f"job {job_id!r} not found", field="jobId")
    job = stored.job
    if not job.trigger.webhook_enabled:
        raise ApiError(
            404, "webhook_disabled", f"job {job_id!r} does not accept webhooks", field="jobId"
        )
    try:
        verify_signature(job.trigger, body, headers, datetime.now(UTC))
    except ChronosError as exc:
        # The job's own secret reference does not resolve on this host: our fault, not the
        # caller's, and retrying will not fix it.
        raise ApiError(500, "secret_unavailable", f"job {job_id!r}: {exc}") from exc
    if stored.paused:
        raise ApiError(409, "job_paused", f"job {job_id!r} is paused; resume it to accept webhooks")
    if not job.enabled:
        raise ApiError(409, "job_disabled", f"job {job_id!r} is disabled")
    delivery = delivery_id(headers)
    if delivery is not None:
        seen = dedupe.seen(job_id, delivery)
        if seen is not None:
            return Accepted(jobId=job_id, executionId=seen)
    key = webhook_key(job_id, delivery) if delivery is not None else None
    triggered = runtime.triggers.fire(job, "webhook", payload=payload, idempotency_key=key)
    if delivery is not None:
        dedupe.remember(job_id, delivery, triggered.execution_id)
    return Accepted(jobId=job_id, executionId=triggered.execution_id)


def _schema_body(model: type[BaseModel] | None, description: str) -> dict[str, Any]:
    schema = model.model_json_schema() if model else {}
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


@router.post(
    "/webhook",
    status_code=202,
    response_model=Accepted,
    openapi_extra=_schema_body(WebhookRequest, "The job to run and the payload to run it with."),
)
def post_webhook(
    request: Request,
    body: RawBody,
    runtime: RuntimeDep,
    dedupe: DedupeDep,
) -> Accepted:
    """Run a job with a payload. A repeated delivery id (`X-GitHub-Delivery`, `Idempotency-Key`
    or `webhook-id`) answers with the first execution's id and creates nothing."""
    document = _parse_json(body)
    job_id = _job_id_of(document)
    return accept(runtime, dedupe, job_id, document.get("payload"), body, dict(request.headers))


@router.post(
    "/webhooks/{job_id}",
    status_code=202,
    response_model=Accepted,
    openapi_extra=_schema_body(None, "Any JSON document; it becomes the execution's payload."),
)
def post_job_webhook(
    job_id: str,
    request: Request,
    body: RawBody,
    runtime: RuntimeDep,
    dedupe: DedupeDep,
) -> Accepted:
    """Run a job with the whole body as its payload, for senders that choose their own body
    (GitHub, Stripe, ...)."""
    payload = _parse_json(body)
    return accept(runtime, dedupe, job_id, payload, body, dict(request.headers))
