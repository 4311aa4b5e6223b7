"""Process-wide logging: one JSON object per line (or a console line for humans), secrets removed.

Every record carries the service name, the ids of the execution being worked on (from `extra`,
else from `execution_scope`, which the worker sets around each message) and the trace id of the
current OpenTelemetry span, so a log search and a trace search find the same execution.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from shared.settings import Settings

REDACTED = "[redacted]"
# Keys of `extra` whose values are credentials whatever they contain.
_SECRET_KEYS = re.compile(
    r"(authorization|password|passwd|secret|token|api[_-]?key|cookie|dsn)", re.IGNORECASE
)
# Credentials that show up inside free text: auth headers, and passwords in URLs.
_SECRET_TEXT = (
    (
        re.compile(
            r"(?i)\b(authorization|x-api-key|api-key)(['\"]?\s*[:=]\s*['\"]?)"
            r"(?:(?:bearer|basic|token|digest)\s+)?[^\s'\",}]+"
        ),
        r"\1\2" + REDACTED,
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
)
# Shorter values are too likely to occur in ordinary text to be replaced safely.
_MIN_SECRET_LEN = 4
# Libraries that log every request or connection at INFO: our own lines say more.
_NOISY = ("httpx", "httpcore", "urllib3", "pika", "aiokafka", "kafka", "nats", "uvicorn.access")

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
_scope: ContextVar[Mapping[str, Any] | None] = ContextVar("chronos_log_scope", default=None)
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def mask(value: str) -> None:
    """Never log `value` (a resolved secret): it is replaced wherever it appears."""
    if len(value) >= _MIN_SECRET_LEN:
        with _secrets_lock:
            _secrets.add(value)


@contextmanager
def execution_scope(**ids: Any) -> Iterator[None]:
    """Add these ids (job_id, execution_id, attempt) to every record logged inside the block."""
    token = _scope.set({**(_scope.get() or {}), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _scope.reset(token)


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    with _secrets_lock:
        known = tuple(_secrets)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _clean(key: str, value: Any) -> Any:
    if _SECRET_KEYS.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(key, v) for v in value]
    return value


def _trace_ids() -> dict[str, str]:
    try:
        from opentelemetry import trace
    except ImportError:
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def fields(record: logging.LogRecord, service: str) -> dict[str, Any]:
    """The data of one record, redacted, in output order."""
    out: dict[str, Any] = {
        "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": redact(record.getMessage()),
        "service": service,
    }
    out.update(_scope.get() or {})
    out.update(_trace_ids())
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            out[key] = _clean(key, value)
    if record.exc_info:
        out["exception"] = redact(logging.Formatter().formatException(record.exc_info))
    return out


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(fields(record, self.service), default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """`time level logger: message key=value ...`, for a terminal."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        data = fields(record, self.service)
        head = f"{data.pop('timestamp')} {data.pop('level').upper():<7} {data.pop('logger')}:"
        message = data.pop("message")
        exception = data.pop("exception", None)
        data.pop("service")
        data.pop("span_id", None)
        tail = " ".join(f"{k}={v}" for k, v in data.items() if v is not None)
        line = f"{head} {message} {tail}".rstrip()
        return f"{line}\n{exception}" if exception else line


def configure_logging(settings: Settings, service: str, stream: TextIO | None = None) -> None:
    """Send every logger's records to stderr (or `stream`) in `LOG_FORMAT` at `LOG_LEVEL`.

    Replaces handlers installed before (Dramatiq's, uvicorn's, basicConfig's), so that every
    line a process writes has the same shape.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter: logging.Formatter = (
        ConsoleFormatter(service) if settings.log_format == "console" else JsonFormatter(service)
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq"):
        # Their own handlers would print a second, differently shaped copy of each line.
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
    quiet = logging.WARNING if settings.log_level != "debug" else logging.DEBUG
    for name in _NOISY:
        logging.getLogger(name).setLevel(quiet)
    logging.captureWarnings(True)
