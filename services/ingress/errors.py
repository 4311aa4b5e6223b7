"""The JSON error body every ingress answer shares, and the exception that carries it.

Every error answers `{"error": "<what is wrong, for a person>", "code": "<stable token>"}`, plus
`field` when one input is to blame, so callers can both show and branch on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException


class ErrorBody(BaseModel):
    error: str
    """What is wrong, naming the field or resource."""
    code: str
    """Stable machine-readable token, e.g. `invalid_json`, `job_paused`."""
    field: str | None = None
    """The input at fault, when there is one."""


class ApiError(HTTPException):
    """An answer other than success, raised anywhere below the app and rendered as JSON."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, headers)
        self.code = code
        self.message = message
        self.field = field


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": message, "code": code}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers=headers)


# Documented on every route, so the OpenAPI document tells clients what an error looks like.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "Invalid JSON, or a field that does not validate (named in `field`)."),
        (401, "Missing or wrong bearer token or signature."),
        (404, "Unknown job or execution."),
        (413, "Body larger than MAX_BODY_BYTES."),
        (415, "Body is not JSON."),
        (503, "Postgres or the broker cannot take the request now; retry."),
    )
}
