"""Liveness (`/_health`: the process answers) and readiness (`/_ready`: it can accept work)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.ingress.deps import RuntimeDep
from shared.runtime import Runtime

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/_health")
def health() -> dict[str, str]:
    """200 while the process runs; it touches nothing else."""
    return {"status": "ok"}


def _check_postgres(runtime: Runtime) -> None:
    with runtime.db.transaction() as conn:
        conn.execute("SELECT 1")


def _check_broker(runtime: Runtime) -> None:
    broker: Any = runtime.broker
    if runtime.settings.broker_kind == "redis":
        broker.client.ping()
    elif not broker.connection.is_open:
        raise ConnectionError("RabbitMQ connection is closed")


@router.get(
    "/_ready",
    responses={503: {"description": "Postgres or the broker does not answer."}},
)
def ready(runtime: RuntimeDep) -> JSONResponse:
    """200 when Postgres and the broker both answer, else 503 naming the one that does not."""
    checks: dict[str, str] = {}
    for name, check in (("postgres", _check_postgres), ("broker", _check_broker)):
        try:
            check(runtime)
            checks[name] = "ok"
        except Exception as exc:
            log.warning("readiness check failed", extra={"check": name, "error": str(exc)})
            checks[name] = f"unavailable: {type(exc).__name__}: {exc}"
    failing = [name for name, state in checks.items() if state != "ok"]
    if failing:
        body = {
            "status": "unavailable",
            "error": f"{' and '.join(failing)} not reachable",
            "code": "not_ready",
            "checks": checks,
        }
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})
