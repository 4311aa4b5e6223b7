"""Who may call: bearer tokens (WEBHOOK_SECRET, API_TOKEN) and per-job webhook signatures.

Every comparison of a secret against caller input is constant-time (`hmac.compare_digest`), so
response timing tells an attacker nothing about how much of a guess was right.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta

from services.ingress.errors import ApiError
from shared.jobs import TriggerConfig
from shared.secrets import resolve

# Standard Webhooks: a signature older or newer than this is refused (replay protection).
TIMESTAMP_TOLERANCE = timedelta(minutes=5)
_WWW_AUTHENTICATE = {"WWW-Authenticate": "Bearer"}


def unauthorized(code: str, message: str, field: str | None = None) -> ApiError:
    return ApiError(401, code, message, field=field, headers=_WWW_AUTHENTICATE)


def bearer_error(authorization: str | None, secret: str, what: str) -> ApiError | None:
    """The 401 to answer unless `Authorization: Bearer <secret>`; an empty secret turns the
    check off."""
    if not secret:
        return None
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return unauthorized(
            "missing_token",
            f"missing bearer token: send Authorization: Bearer <{what}>",
            "Authorization",
        )
    if not hmac.compare_digest(token.strip().encode(), secret.encode()):
        return unauthorized("invalid_token", f"bearer token does not match {what}", "Authorization")
    return None


def require_bearer(authorization: str | None, secret: str, what: str) -> None:
    error = bearer_error(authorization, secret, what)
    if error is not None:
        raise error


def verify_signature(
    config: TriggerConfig, body: bytes, headers: Mapping[str, str], now: datetime
) -> None:
    """Check the job's signature scheme over the raw body; raise 401 when it does not hold."""
    if config.signature == "none" or config.secret is None:
        return
    secret = resolve(config.secret)
    if config.signature == "github":
        verify_github(secret, body, headers.get("x-hub-signature-256"))
    else:
        verify_standard_webhooks(secret, body, headers, now)


def verify_github(secret: str, body: bytes, header: str | None) -> None:
    """`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`."""
    field = "X-Hub-Signature-256"
    if not header:
        raise unauthorized("missing_signature", f"missing {field} header", field)
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(header.strip().encode(), expected.encode()):
        raise unauthorized("invalid_signature", f"{field} does not match the body", field)


def standard_webhooks_key(secret: str) -> bytes:
    """A `whsec_<base64>` secret is its decoded bytes; any other string is used as it is."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            pass
    return secret.encode()


def sign_standard_webhooks(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of one message (also what a sender computes)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_webhooks_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_standard_webhooks(
    secret: str, body: bytes, headers: Mapping[str, str], now: datetime
) -> None:
    """`webhook-id`, `webhook-timestamp` (Unix seconds, within 5 minutes of now) and
    `webhook-signature` (space-separated `v1,<base64>` list; one match is enough)."""
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    for name, value in (
        ("webhook-id", msg_id),
        ("webhook-timestamp", stamp),
        ("webhook-signature", signatures),
    ):
        if not value:
            raise unauthorized("missing_signature", f"missing {name} header", name)
    assert msg_id is not None and stamp is not None and signatures is not None
    if not stamp.isdigit():
        raise unauthorized(
            "invalid_timestamp", "webhook-timestamp is not Unix seconds", "webhook-timestamp"
        )
    age = abs(now.timestamp() - int(stamp))
    if age > TIMESTAMP_TOLERANCE.total_seconds():
        raise unauthorized(
            "expired_timestamp",
            f"webhook-timestamp is {int(age)}s away from now; the tolerance is "
            f"{int(TIMESTAMP_TOLERANCE.total_seconds())}s",
            "webhook-timestamp",
        )
    expected = sign_standard_webhooks(secret, msg_id, int(stamp), body).encode()
    if not any(hmac.compare_digest(sig.encode(), expected) for sig in signatures.split()):
        raise unauthorized(
            "invalid_signature", "webhook-signature does not match the body", "webhook-signature"
        )
