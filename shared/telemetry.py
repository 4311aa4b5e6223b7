"""OpenTelemetry tracing: an OTLP/HTTP exporter to `OTLP_ENDPOINT`, off when it is unset.

Spans come from the libraries' own instrumentation where it exists: FastAPI emits server spans
by itself once a tracer provider is set (so no ASGI instrumentation is added, which would
double them), and the httpx, psycopg and redis instrumentations add client spans. Dramatiq has
no maintained instrumentation; `shared.tracing_middleware` carries the context through the
queue. The packages are the `telemetry` extra: without them tracing stays off.

Client calls made outside any trace (the broker polling Redis, the worker's batched Postgres
writes) would each start a one-span trace of their own; the sampler drops those, so every trace
begins at something that means work: a request, a cron fire, an enqueue.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from shared.settings import Settings

log = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"


def traces_url(endpoint: str) -> str:
    """`OTLP_ENDPOINT` may be the collector's base URL or its full traces URL."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def configure_tracing(settings: Settings, service: str) -> bool:
    """Install the global tracer provider and instrumentations; True when tracing is on."""
    if not settings.otlp_endpoint:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased
    except ImportError:
        log.warning("OTLP_ENDPOINT is set but the telemetry extra is not installed")
        return False
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"chronos-{service}"}),
        sampler=ParentBased(root=_orphan_client_sampler()),
    )
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(traces_url(settings.otlp_endpoint)))
    )
    trace.set_tracer_provider(provider)
    _instrument_libraries()
    log.info("tracing enabled", extra={"otlp_endpoint": settings.otlp_endpoint})
    return True


def shutdown_tracing() -> None:
    """Flush spans still buffered; call before the process exits."""
    try:
        from opentelemetry import trace
    except ImportError:
        return
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if shutdown is not None:
        shutdown()


def _instrument_libraries() -> None:
    instrumentors: list[tuple[str, str]] = [
        ("opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor"),
        ("opentelemetry.instrumentation.psycopg", "PsycopgInstrumentor"),
        ("opentelemetry.instrumentation.redis", "RedisInstrumentor"),
    ]
    for module_name, class_name in instrumentors:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        instrumentor = getattr(module, class_name)()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


def _orphan_client_sampler() -> Any:
    """Root sampler: record everything except client spans that have no parent."""
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
    from opentelemetry.trace import SpanKind

    class DropOrphanClients(Sampler):
        def should_sample(
            self,
            parent_context: Any,
            trace_id: int,
            name: str,
            kind: SpanKind | None = None,
            attributes: Any = None,
            links: Any = None,
            trace_state: Any = None,
        ) -> SamplingResult:
            if kind == SpanKind.CLIENT:
                return SamplingResult(Decision.DROP)
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

        def get_description(self) -> str:
            return "DropOrphanClients"

    return DropOrphanClients()
