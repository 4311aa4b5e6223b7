"""Sentry: unhandled errors of every service and one event per execution that ends `failed`.

Nothing is sent, and sentry-sdk need not be installed, when `SENTRY_DSN` is unset. In a worker,
`configure_sentry` must run before the Dramatiq broker is created: the Dramatiq integration
patches the broker's constructor to add its middleware.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.logs import redact
from shared.settings import Settings

log = logging.getLogger(__name__)

_enabled = False


def configure_sentry(settings: Settings, service: str) -> bool:
    """Initialise the SDK for this process; True when events will be sent."""
    global _enabled
    dsn = settings.sentry_dsn.get_secret_value()
    if not dsn:
        return False
    try:
        import sentry_sdk
        from sentry_sdk.integrations.dramatiq import DramatiqIntegration
    except ImportError:
        log.warning("SENTRY_DSN is set but sentry-sdk is not installed")
        return False
    sentry_sdk.init(
        dsn=dsn,
        integrations=[DramatiqIntegration()],
        server_name=service,
        # Deliveries go to users' endpoints: they get W3C traceparent, not Sentry's headers.
        trace_propagation_targets=[],
        send_default_pii=False,
    )
    sentry_sdk.set_tag("service", service)
    _enabled = True
    return True


def report_failed_execution(
    job_id: str, execution_id: str, attempt: int, error: str | None, trigger: str | None = None
) -> None:
    """One event for an execution that ended `failed`, grouped by job."""
    if not _enabled:
        return
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        scope.set_tag("job_id", job_id)
        scope.set_tag("execution_id", execution_id)
        if trigger:
            scope.set_tag("trigger", trigger)
        scope.fingerprint = ["chronos-execution-failed", job_id]
        details: dict[str, Any] = {"attempts": attempt, "error": error and redact(error)}
        scope.set_context("execution", details)
        sentry_sdk.capture_message(f"execution of job {job_id} failed", level="error")


def flush_sentry(timeout: float = 2.0) -> None:
    if _enabled:
        import sentry_sdk

        sentry_sdk.flush(timeout=timeout)
