"""One webhook through `chronos ingress`, `chronos worker --processes 2` and `chronos ticker` as
an operator sees it: one trace from the ingress request to the target, every log line JSON with
the execution id on the lines about it, and every metric of the issue scraped from `/metrics`."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from http_target import Target
from telemetry_receivers import OtlpReceiver, ReceivedSpan
from worker_fixtures import WorkerProcesses, wait_terminal

from shared import catalog
from shared.broker import queue_name
from shared.jobs import Job
from shared.runtime import Runtime
from shared.settings import Settings

pytestmark = pytest.mark.slow

CHRONOS = Path(sys.executable).with_name("chronos")
START_TIMEOUT_S = 30.0
SECRET = "s3cr3t-pipeline-token"
# OTLP span kinds (opentelemetry.proto.trace.v1.Span.SpanKind).
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5
METRIC_NAMES = {
    "chronos_jobs_total",
    "chronos_executions_total",
    "chronos_execution_duration_seconds",
    "chronos_attempts_total",
    "chronos_scheduler_lag_seconds",
    "chronos_queue_depth",
    "chronos_leader",
    "chronos_webhooks_total",
}
_SAMPLE = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(url: str) -> Samples:
    """Every sample of a Prometheus text page, by (name, labels); none while nothing answers."""
    try:
        text = httpx.get(url, timeout=10).text
    except httpx.HTTPError:
        return {}
    samples: Samples = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            name, labels, value = match.groups()
            samples[(name, frozenset(_LABEL.findall(labels or "")))] = float(value)
    return samples


def total(samples: list[Samples], name: str, **labels: str) -> float:
    """The sum over processes of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for s in samples for (n, ls), v in s.items() if n == name and wanted <= ls)


def families(samples: Samples) -> set[str]:
    return {re.sub(r"_(bucket|sum|count|created)$", "", name) for name, _ in samples}


def poll(probe: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return value


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            lines.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"{path.name}: log line is not JSON: {line!r}") from None
    return lines


class Service:
    """A `chronos` process in its own process group, its output in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [str(CHRONOS), *args],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.stop()


def test_webhook_trace_logs_and_metrics_end_to_end(
    settings: Settings,
    settings_env: dict[str, str],
    runtime: Runtime,
    target: Target,
    otlp: OtlpReceiver,
    worker_processes: WorkerProcesses,
    services: list[Service],
    tmp_path: Path,
) -> None:
    hook = Job.model_validate(
        {
            "id": "traced",
            "webhook": {"url": target.url, "headers": {"Authorization": f"Bearer {SECRET}"}},
        }
    )
    # A cron job whose webhook nobody answers (port 9): the ticker has something to fire.
    tick = Job.model_validate(
        {"id": "tick", "schedule": "* * * * * *", "webhook": {"url": "http://127.0.0.1:9/"}}
    )
    catalog.apply(runtime.db, [hook, tick])
    env = {**settings_env, "OTLP_ENDPOINT": otlp.endpoint, "TICKER_LOCK_TTL": "1s"}
    ingress_port, ticker_port, worker_port = free_port(), free_port(), free_port()
    ingress = Service(
        ["ingress", "--host", "127.0.0.1", "--port", str(ingress_port)],
        env,
        tmp_path / "ingress.log",
    )
    services.append(ingress)
    ticker = Service(["ticker"], {**env, "METRICS_PORT": str(ticker_port)}, tmp_path / "ticker.log")
    services.append(ticker)
    worker_processes.env.update(OTLP_ENDPOINT=otlp.endpoint, METRICS_PORT=str(worker_port))
    worker_processes.start("--processes", "2", "--threads", "2")
    api = f"http://127.0.0.1:{ingress_port}"

    def answers() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{api}/_health", timeout=1).status_code == 200
        assert ingress.process.poll() is None, ingress.log.read_text()
        return False

    poll(answers, "the ingress to answer", START_TIMEOUT_S)
    assert httpx.post(f"{api}/webhook", json={"jobId": "nope"}, timeout=20).status_code == 404
    response = httpx.post(f"{api}/webhook", json={"jobId": "traced"}, timeout=20)
    assert response.status_code == 202, response.text
    execution_id = response.json()["executionId"]
    assert wait_terminal(runtime.db, UUID(execution_id))["status"] == "succeeded"

    # Traces: the ingress request, the enqueue, the worker, the dispatch and the HTTP call.
    (request,) = target.requests_for(execution_id)
    _, trace_id, client_span_id, _ = request.headers["traceparent"].split("-")

    def trace_spans() -> list[ReceivedSpan]:
        # Each process exports in its own batches: wait for the ingress's and the worker's.
        spans = [s for s in otlp.spans() if s.trace_id == trace_id]
        kinds = {s.kind for s in spans}
        whole = {SERVER, PRODUCER, CONSUMER} <= kinds and "dispatch webhook" in {
            s.name for s in spans
        }
        return spans if whole else []

    spans = poll(trace_spans, "the spans of the webhook's trace")
    by_id = {s.span_id: s for s in spans}
    server = next(s for s in spans if s.kind == SERVER)
    publish = next(s for s in spans if s.kind == PRODUCER)
    consumer = next(s for s in spans if s.kind == CONSUMER)
    dispatch = next(s for s in spans if s.name == "dispatch webhook")
    client = next(s for s in spans if s.name == "POST" and s.kind == CLIENT)
    assert (server.service, server.parent_id) == ("chronos-ingress", "")
    assert publish.service == "chronos-ingress"
    assert consumer.service == dispatch.service == client.service == "chronos-worker"
    assert consumer.attributes["chronos.execution_id"] == execution_id

    def ancestors(span: ReceivedSpan) -> list[str]:
        chain = []
        while span.parent_id in by_id:
            span = by_id[span.parent_id]
            chain.append(span.span_id)
        return chain

    assert server.span_id in ancestors(publish)
    assert by_id[consumer.parent_id] is publish
    assert by_id[dispatch.parent_id] is consumer
    assert by_id[client.parent_id] is dispatch
    assert client.span_id == client_span_id

    # Metrics: every process serves its own; worker processes one port each.
    ticker_url = f"http://127.0.0.1:{ticker_port}/metrics"
    poll(lambda: total([scrape(ticker_url)], "chronos_scheduler_lag_seconds_count"), "a cron fire")
    worker_ports = poll(
        lambda: [
            line["port"]
            for line in json_lines(worker_processes.log_dir / "worker-0.log")
            if line["message"] == "metrics served"
        ][:2],
        "both worker processes to serve metrics",
    )
    assert len(set(worker_ports)) == 2
    workers = [scrape(f"http://127.0.0.1:{port}/metrics") for port in worker_ports]
    ingress_metrics = scrape(f"{api}/metrics")
    ticker_metrics = scrape(ticker_url)
    labels = {"job": "traced", "status": "succeeded", "trigger": "webhook"}
    assert total(workers, "chronos_executions_total", **labels) == 1
    assert total(workers, "chronos_attempts_total") >= 1
    assert total(workers, "chronos_execution_duration_seconds_count") >= 1
    assert total([ingress_metrics], "chronos_webhooks_total", status_code="202") == 1
    assert total([ingress_metrics], "chronos_webhooks_total", status_code="404") == 1
    assert total([ticker_metrics], "chronos_leader") == 1
    assert total([ticker_metrics], "chronos_jobs_total") == 1
    queue = queue_name(settings)
    for process in (ingress_metrics, ticker_metrics, *workers):
        assert {("queue", queue), ("state", "dead")} in [
            set(ls) for n, ls in process if n == "chronos_queue_depth"
        ]
    exported = set().union(*(families(s) for s in (ingress_metrics, ticker_metrics, *workers)))
    assert exported >= METRIC_NAMES, METRIC_NAMES - exported

    # Logs: every line of every process is JSON, and a line that names an execution (the
    # webhook's or a cron fire's) carries its id in `execution_id`.
    for service in services:
        service.stop()
    worker_processes.stop_all()
    with runtime.db.transaction() as conn:
        execution_ids = [str(row["id"]) for row in conn.execute("SELECT id FROM executions")]
    logs = [ingress.log, ticker.log, *sorted(worker_processes.log_dir.glob("*.log"))]
    about: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in logs:
        for line in json_lines(path):
            assert {"timestamp", "level", "logger", "message", "service"} <= line.keys(), line
            for named in (i for i in execution_ids if i in json.dumps(line)):
                assert line.get("execution_id") == named, (path.name, line)
                about[named].append(line)
    assert any(line["message"] == "attempt finished" for line in about[execution_id])
    assert any(line.get("trace_id") == trace_id for line in about[execution_id])
    text = "".join(path.read_text(errors="replace") for path in logs)
    assert SECRET not in text
