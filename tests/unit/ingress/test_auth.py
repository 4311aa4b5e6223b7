"""Signature schemes and cursors as pure functions: the edges the HTTP tests do not reach."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from services.ingress import cursor
from services.ingress.auth import (
    bearer_error,
    sign_standard_webhooks,
    standard_webhooks_key,
    verify_github,
    verify_standard_webhooks,
)
from services.ingress.errors import ApiError

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_standard_webhooks_reference_vector() -> None:
    # The example of the Standard Webhooks specification's reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = sign_standard_webhooks(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_whsec_prefix_is_base64_and_other_secrets_are_raw() -> None:
    assert standard_webhooks_key("whsec_" + base64.b64encode(b"k").decode()) == b"k"
    assert standard_webhooks_key("plain") == b"plain"


def _headers(stamp: datetime, body: bytes, secret: str = "s") -> dict[str, str]:
    ts = int(stamp.timestamp())
    return {
        "webhook-id": "m1",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_standard_webhooks(secret, "m1", ts, body),
    }


@pytest.mark.parametrize("offset", [timedelta(minutes=-5), timedelta(0), timedelta(minutes=5)])
def test_standard_webhooks_within_tolerance(offset: timedelta) -> None:
    verify_standard_webhooks("s", b"{}", _headers(NOW + offset, b"{}"), NOW)


@pytest.mark.parametrize(
    "offset", [timedelta(minutes=-5, seconds=-1), timedelta(minutes=5, seconds=1)]
)
def test_standard_webhooks_outside_tolerance(offset: timedelta) -> None:
    with pytest.raises(ApiError) as raised:
        verify_standard_webhooks("s", b"{}", _headers(NOW + offset, b"{}"), NOW)
    assert raised.value.status_code == 401 and raised.value.code == "expired_timestamp"


def test_standard_webhooks_missing_header_names_it() -> None:
    headers = _headers(NOW, b"{}")
    del headers["webhook-signature"]
    with pytest.raises(ApiError) as raised:
        verify_standard_webhooks("s", b"{}", headers, NOW)
    assert raised.value.field == "webhook-signature"


def test_github() -> None:
    body = b'{"a":1}'
    good = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    verify_github("k", body, good)
    for bad in (None, "", "sha256=00", good.upper(), "sha1=" + good[7:]):
        with pytest.raises(ApiError):
            verify_github("k", body, bad)


def test_bearer() -> None:
    assert bearer_error(None, "", "WEBHOOK_SECRET") is None
    assert bearer_error("Bearer t", "t", "WEBHOOK_SECRET") is None
    assert bearer_error("bearer t", "t", "WEBHOOK_SECRET") is None
    for header in (None, "", "Bearer", "Basic t", "Bearer x", "Bearer tt"):
        error = bearer_error(header, "t", "WEBHOOK_SECRET")
        assert error is not None and error.status_code == 401


def test_cursor_round_trip_and_garbage() -> None:
    row = {"created_at": NOW, "id": "6f1c0f5e-8d2b-4f60-9a53-5d5ad2a1f0a1"}
    at, ident = cursor.decode(cursor.encode(row))
    assert at == NOW and str(ident) == row["id"]
    for garbage in ("x", "e30", cursor.encode({**row, "created_at": NOW.replace(tzinfo=None)})):
        with pytest.raises(ApiError) as raised:
            cursor.decode(garbage)
        assert raised.value.code == "invalid_cursor"
