"""The log line format and the redaction of secrets, through the configured root logger."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from shared.logs import REDACTED, configure_logging, execution_scope, mask
from shared.settings import load_settings


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    configure_logging(load_settings(log_level="debug"), "worker", stream=stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_object_per_line_with_extra_fields(output: io.StringIO) -> None:
    log = logging.getLogger("chronos.test")
    log.info("attempt finished", extra={"execution_id": "e1", "status_code": 200})
    log.warning("multi\nline %s", "message")
    first, second = lines(output)
    assert first["message"] == "attempt finished"
    assert first["level"] == "info"
    assert first["logger"] == "chronos.test"
    assert first["service"] == "worker"
    assert first["execution_id"] == "e1"
    assert first["status_code"] == 200
    assert first["timestamp"].endswith("+00:00")
    assert second["message"] == "multi\nline message"


def test_execution_scope_and_current_span_tag_every_line(output: io.StringIO) -> None:
    span = NonRecordingSpan(
        SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=False, trace_flags=TraceFlags(1))
    )
    with execution_scope(job_id="nightly", execution_id="e2", attempt=3), trace.use_span(span):
        logging.getLogger("httpcore.test").error("connection reset")
    logging.getLogger("chronos.test").info("outside")
    inside, outside = lines(output)
    assert (inside["job_id"], inside["execution_id"], inside["attempt"]) == ("nightly", "e2", 3)
    assert inside["trace_id"] == f"{0xABC:032x}"
    assert "execution_id" not in outside and "trace_id" not in outside


def test_exceptions_are_one_line_with_the_traceback(output: io.StringIO) -> None:
    try:
        raise ValueError("bad value")
    except ValueError:
        logging.getLogger("chronos.test").exception("dispatcher raised")
    (line,) = lines(output)
    assert "ValueError: bad value" in line["exception"]


def test_auth_headers_and_secret_fields_are_redacted(output: io.StringIO) -> None:
    log = logging.getLogger("chronos.test")
    log.info(
        "request sent",
        extra={
            "headers": {"Authorization": "Bearer abc.def", "X-Trace": "ok"},
            "api_token": "t0ps3cret",
            "url": "amqp://guest:hunter22@rabbit:5672/",
        },
    )
    log.info("got Authorization: Basic dXNlcjpwYXNz from %s", "Bearer eyJhbGciOi")
    text = output.getvalue()
    for secret in ("abc.def", "t0ps3cret", "hunter22", "dXNlcjpwYXNz", "eyJhbGciOi"):
        assert secret not in text
    first, second = lines(output)
    assert first["headers"] == {"Authorization": REDACTED, "X-Trace": "ok"}
    assert first["api_token"] == REDACTED
    assert first["url"] == f"amqp://guest:{REDACTED}@rabbit:5672/"
    assert second["message"] == f"got Authorization: {REDACTED} from Bearer {REDACTED}"


def test_resolved_secret_values_never_reach_a_line(output: io.StringIO) -> None:
    mask("sk_live_51Hxyz")
    logging.getLogger("chronos.test").warning(
        "HTTP 401 from target", extra={"response": "key sk_live_51Hxyz rejected"}
    )
    (line,) = lines(output)
    assert line["response"] == f"key {REDACTED} rejected"


def test_console_format_for_humans() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(load_settings(log_format="console"), "ticker", stream=stream)
        logging.getLogger("chronos.test").info("jobs loaded", extra={"jobs": 3})
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    line = stream.getvalue().strip()
    assert "INFO" in line and "chronos.test: jobs loaded jobs=3" in line
    with pytest.raises(ValueError):
        json.loads(line)
