"""Prometheus metrics of every Chronos process, and the HTTP endpoint that serves them.

Each process keeps its own registry and serves it: the ingress on `/metrics` of its own port,
each worker and ticker process on `METRICS_PORT`. Worker processes started together take one
port each, the first free one from `METRICS_PORT` up (so `--processes 4` serves on
`METRICS_PORT` .. `METRICS_PORT+3`): every process is its own scrape target and nothing has to
be merged on disk, as Prometheus' multiprocess mode would need.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.queues import STATES, read_depths
from shared.settings import Settings

log = logging.getLogger(__name__)

# Worker processes of one host probe this many ports from METRICS_PORT for a free one.
PORT_SEARCH = 256
_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REGISTRY = CollectorRegistry()

JOBS = Gauge(
    "chronos_jobs_total",
    "Jobs registered (enabled, with a schedule, as the ticker sees them).",
    registry=REGISTRY,
)
EXECUTIONS = Counter(
    "chronos_executions",
    "Executions that reached a final state.",
    ["job", "status", "trigger"],
    registry=REGISTRY,
)
EXECUTION_DURATION = Histogram(
    "chronos_execution_duration_seconds",
    "From an execution's scheduled time to its final state (queueing and retries included).",
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
ATTEMPTS = Counter(
    "chronos_attempts", "Delivery attempts by outcome.", ["outcome"], registry=REGISTRY
)
SCHEDULER_LAG = Histogram(
    "chronos_scheduler_lag_seconds",
    "How late the ticker fired a cron execution after its scheduled time.",
    buckets=_LAG_BUCKETS,
    registry=REGISTRY,
)
LEADER = Gauge(
    "chronos_leader", "1 while this ticker replica holds the leader lock.", registry=REGISTRY
)
WEBHOOKS = Counter(
    "chronos_webhooks",
    "Webhook requests answered, by status code.",
    ["status_code"],
    registry=REGISTRY,
)


class QueueDepthCollector(Collector):
    """`chronos_queue_depth{queue,state}`, read from the broker at each scrape."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def describe(self) -> Iterator[Any]:
        # Without this, registering the collector would call collect() and touch the broker.
        return iter([GaugeMetricFamily("chronos_queue_depth", "", labels=["queue", "state"])])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "chronos_queue_depth", "Messages in each broker queue.", labels=["queue", "state"]
        )
        try:
            depths = read_depths(self.settings, ages=False)
        except Exception:
            # A scrape must still answer with the process's own metrics when the broker is down.
            log.warning("could not read queue depths", exc_info=True)
            depths = []
        for depth in depths:
            for state in STATES:
                family.add_metric([depth.queue, state], getattr(depth, state))
        yield family


def watch_queues(settings: Settings) -> None:
    """Report queue depth from this process's registry."""
    REGISTRY.register(QueueDepthCollector(settings))


def serve_metrics(settings: Settings, *, search: bool = False) -> int | None:
    """Serve the registry on `METRICS_PORT` (unset: not at all); return the port taken.

    With `search`, take the first free port from `METRICS_PORT` up (worker processes).
    """
    if settings.metrics_port is None:
        return None
    first = settings.metrics_port
    last = first + (PORT_SEARCH if search and first else 1)
    for port in range(first, min(last, 65536)):
        try:
            server, _thread = start_http_server(port, registry=REGISTRY)
        except OSError:
            continue
        taken = int(server.server_address[1])
        log.info("metrics served", extra={"port": taken})
        return taken
    raise OSError(f"METRICS_PORT: no free port in {first}..{last - 1}")
