"""Opaque keyset cursors for the executions list: the (created_at, id) of a page's last row."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any
from uuid import UUID

from services.ingress.errors import ApiError


def encode(row: dict[str, Any]) -> str:
    raw = json.dumps([row["created_at"].isoformat(), str(row["id"])], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, ident = json.loads(raw)
        at = datetime.fromisoformat(stamp)
        if at.tzinfo is None:
            raise ValueError("naive timestamp")
        return at, UUID(ident)
    except (binascii.Error, UnicodeDecodeError, TypeError, ValueError) as exc:
        raise ApiError(
            400,
            "invalid_cursor",
            "cursor is not one this API returned; pass nextCursor back unchanged",
            field="cursor",
        ) from exc
