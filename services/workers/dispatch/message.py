"""What every broker dispatcher puts on the wire and how long it waits for the answer."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from services.workers.dispatch.base import Delivery

# Replies and acks are stored on the attempt row; a chatty consumer must not bloat Postgres.
RESPONSE_CAP_BYTES = 64 * 1024
_RESULT_KEYS = {"status", "message", "data"}


def body(delivery: Delivery) -> bytes:
    """The payload as compact JSON (`null` when the execution has none)."""
    return json.dumps(delivery.payload, separators=(",", ":")).encode()


def wait_limit(delivery: Delivery, own: timedelta | None, default: timedelta) -> timedelta:
    """The target's own wait (else the process default), never longer than the job's timeout."""
    return min(own or default, delivery.timeout)


def reply_text(data: bytes) -> str:
    return data[:RESPONSE_CAP_BYTES].decode("utf-8", errors="replace").replace("\x00", "")


def reply_result(data: bytes) -> dict[str, Any] | None:
    """A `{"status", "message", "data"}` JSON reply, the shape HTTP targets may answer with."""
    if len(data) > RESPONSE_CAP_BYTES or not data.lstrip().startswith(b"{"):
        return None
    try:
        value = json.loads(data)
    except ValueError:
        return None
    if isinstance(value, dict) and "status" in value and set(value) <= _RESULT_KEYS:
        return {key: value.get(key) for key in ("status", "message", "data")}
    return None


def ack_text(**fields: Any) -> str:
    """A broker acknowledgement as the attempt's response text."""
    return json.dumps(fields, separators=(",", ":"), default=str)
