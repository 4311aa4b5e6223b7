"""The ingress ASGI app: routes, the body guard, and one JSON shape for every error."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from services.ingress import health, management, metrics, webhook
from services.ingress.body import BodyGuard
from services.ingress.dedupe import Dedupe
from services.ingress.errors import ApiError, error_response
from shared.errors import (
    ConflictError,
    JobDefinitionError,
    NotFoundError,
    UnavailableError,
)
from shared.runtime import Runtime

log = logging.getLogger(__name__)

# How long a caller should wait before retrying a 503.
RETRY_AFTER_S = 1
_HTTP_CODES = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed"}


def create_app(runtime: Runtime, *, close_runtime: bool = False) -> FastAPI:
    """The app over `runtime`; with `close_runtime`, its resources close at shutdown."""
    # Built now, before request threads race to build them.
    runtime.db, runtime.redis, runtime.triggers  # noqa: B018

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_runtime:
            runtime.close()

    app = FastAPI(
        title="Chronos",
        summary="Webhook intake and management API of Chronos, a distributed cron and webhook runner.",
        version="1",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.dedupe = Dedupe(runtime.redis, runtime.settings)
    app.include_router(health.router)
    app.include_router(webhook.router)
    app.include_router(management.router)
    app.include_router(metrics.router)
    app.add_middleware(BodyGuard, max_bytes=runtime.settings.max_body_bytes)
    # Added last, so outermost: it also sees the answers the body guard gives.
    app.add_middleware(metrics.WebhookCounter)
    _install_error_handlers(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if isinstance(exc, ApiError):
            return error_response(
                exc.status_code, exc.code, exc.message, field=exc.field, headers=exc.headers
            )
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        if exc.status_code == 404:
            message = f"no such path: {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return error_response(exc.status_code, code, message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(error) for error in exc.errors()]
        first = problems[0] if problems else {"field": None, "message": "invalid request"}
        if first.get("type") == "json_invalid":
            return error_response(400, "invalid_json", "request body is not valid JSON")
        body: dict[str, Any] = {
            "error": f"{first['field']}: {first['message']}"
            if first["field"]
            else first["message"],
            "code": "invalid_request",
            "field": first["field"],
            "problems": [{"field": p["field"], "message": p["message"]} for p in problems],
        }
        return JSONResponse(body, status_code=400)

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return error_response(404, f"unknown_{exc.kind}", str(exc))

    @app.exception_handler(ConflictError)
    async def conflict(request: Request, exc: ConflictError) -> JSONResponse:
        return error_response(409, "conflict", str(exc))

    @app.exception_handler(JobDefinitionError)
    async def bad_job(request: Request, exc: JobDefinitionError) -> JSONResponse:
        return error_response(400, "invalid_job", str(exc))

    @app.exception_handler(UnavailableError)
    async def unavailable(request: Request, exc: UnavailableError) -> JSONResponse:
        log.warning("request refused: dependency unavailable", extra={"error": str(exc)})
        return error_response(
            503,
            "unavailable",
            f"{exc}; nothing was accepted, retry later",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    # Not logged here: Starlette re-raises after this answer and the server logs the traceback.
    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, "internal_error", "internal error; it has been logged")


def _problem(error: Any) -> dict[str, Any]:
    # `loc` starts with where the value came from (body, query, path); the rest is the field.
    loc = [str(part) for part in error.get("loc", ())]
    source, path = (loc[0], loc[1:]) if loc else ("", [])
    field = ".".join(path) or (source if source != "body" else "")
    return {
        "field": field or None,
        "message": error.get("msg", "invalid"),
        "type": error.get("type"),
    }
