"""The shipped monitoring config refers only to metrics Chronos exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from shared import metrics
from shared.metrics import REGISTRY

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def exported_names() -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names = {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in suffixes.get(family.type, ("",))
    }
    # Collected from the broker at scrape time, so absent from a bare registry.
    return names | {"chronos_queue_depth"}


def test_dashboard_queries_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/chronos-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in exprs for name in re.findall(r"chronos_\w+", expr)}
    titles = {p["title"] for p in dashboard["panels"]}
    assert {"Queue depth", "Executions by status", "Scheduler lag"} <= titles
    assert used and used <= exported_names(), used - exported_names()


def test_issue_metric_names_are_exported_with_their_labels() -> None:
    assert {
        "chronos_jobs_total",
        "chronos_executions_total",
        "chronos_execution_duration_seconds_bucket",
        "chronos_attempts_total",
        "chronos_scheduler_lag_seconds_bucket",
        "chronos_queue_depth",
        "chronos_leader",
        "chronos_webhooks_total",
    } <= exported_names()
    labelled: list[tuple[Any, dict[str, str]]] = [
        (metrics.EXECUTIONS, {"job": "j", "status": "failed", "trigger": "cron"}),
        (metrics.ATTEMPTS, {"outcome": "success"}),
        (metrics.WEBHOOKS, {"status_code": "202"}),
    ]
    for metric, labels in labelled:
        # `labels` raises ValueError unless these are exactly the metric's label names.
        metric.labels(**labels)
        metric.remove(*labels.values())


def test_scrape_and_collector_configs_parse() -> None:
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs = {c["job_name"] for c in prometheus["scrape_configs"]}
    assert jobs == {"chronos-ingress", "chronos-ticker", "chronos-workers"}
    collector = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
