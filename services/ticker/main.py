"""The ticker process: build its resources from settings, run the loop until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import timedelta
from types import FrameType

from services.ticker.changes import JobChanges
from services.ticker.housekeeping import Housekeeper
from services.ticker.leader import LeaderLock
from services.ticker.loop import Ticker
from shared.logs import configure_logging
from shared.metrics import serve_metrics, watch_queues
from shared.runtime import Runtime
from shared.sentry import configure_sentry
from shared.settings import Settings, load_settings
from shared.telemetry import configure_tracing

log = logging.getLogger(__name__)

# The loop and the housekeeping thread each hold at most one connection at a time.
DB_POOL_SIZE = 2


def build(runtime: Runtime) -> tuple[Ticker, Housekeeper]:
    settings = runtime.settings
    leader = LeaderLock(runtime.redis, settings.key("ticker", "leader"), settings.ticker_lock_ttl)
    ticker = Ticker(
        db=runtime.db,
        triggers=runtime.triggers,
        leader=leader,
        changes=JobChanges(settings.database_url),
        default_timezone=settings.cron_timezone,
    )
    housekeeper = Housekeeper(
        runtime.db,
        runtime.enqueuer,
        retention=timedelta(days=settings.run_retention_days),
        dedupe_window=timedelta(hours=settings.dedupe_window_hours),
    )
    return ticker, housekeeper


def run(settings: Settings) -> None:
    """Run one ticker replica in this process until a stop signal."""
    runtime = Runtime(settings, db_pool_size=DB_POOL_SIZE)
    ticker, housekeeper = build(runtime)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        ticker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    upkeep = threading.Thread(
        target=housekeeper.run,
        args=(ticker.leader.is_leader, stop),
        name="housekeeping",
        daemon=True,
    )
    upkeep.start()
    log.info("ticker started", extra={"token": ticker.leader.token})
    try:
        ticker.run()
    finally:
        stop.set()
        upkeep.join()
        runtime.close()
        log.info("ticker stopped")


def main() -> None:
    settings = load_settings()
    configure_logging(settings, "ticker")
    configure_sentry(settings, "ticker")
    configure_tracing(settings, "ticker")
    watch_queues(settings)
    serve_metrics(settings)
    run(settings)
