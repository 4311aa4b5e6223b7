"""What the Dramatiq CLI loads in each worker process: `services.workers.entrypoint:setup`.

Dramatiq calls `setup()` after forking, so every process reads the environment itself and owns
its own Postgres pool, HTTP client and broker connections.
"""

from __future__ import annotations

import dramatiq

from services.workers.process import WorkerProcess
from shared.logs import configure_logging
from shared.metrics import serve_metrics, watch_queues
from shared.sentry import configure_sentry
from shared.settings import load_settings
from shared.telemetry import configure_tracing


def setup() -> None:
    settings = load_settings()
    configure_logging(settings, "worker")
    # Before the broker exists: Sentry's Dramatiq integration patches its constructor.
    configure_sentry(settings, "worker")
    configure_tracing(settings, "worker")
    process = WorkerProcess(settings)
    watch_queues(settings)
    serve_metrics(settings, search=True)
    dramatiq.set_broker(process.broker)
