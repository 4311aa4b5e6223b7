"""The ingress process: settings, logging and the app, served by uvicorn."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from services.ingress.app import create_app
from shared.logs import configure_logging
from shared.metrics import watch_queues
from shared.runtime import Runtime
from shared.sentry import configure_sentry
from shared.settings import load_settings
from shared.telemetry import configure_tracing

# Named, not passed as an object, so uvicorn can import it in each worker process.
APP_FACTORY = "services.ingress.main:app_factory"
# Longest a stopping process waits for requests in flight.
GRACEFUL_SHUTDOWN_S = 10


def app_factory() -> FastAPI:
    """Build one process's app; uvicorn calls this once per worker process."""
    settings = load_settings()
    configure_logging(settings, "ingress")
    # Sentry first: it must hook the broker before the broker is created.
    configure_sentry(settings, "ingress")
    configure_tracing(settings, "ingress")
    # Here, not in create_app: the registry is per process and takes the collector once.
    watch_queues(settings)
    return create_app(Runtime(settings), close_runtime=True)


def serve(host: str, port: int, workers: int) -> None:
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # Our JSON logging is configured in app_factory; uvicorn's own would replace it.
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
