"""HTTP webhook delivery with httpx: one client, and so one connection pool, per worker process.

Every request carries the execution's id headers and `Idempotency-Key: <execution id>` (the same
on every attempt, so targets can deduplicate retries). Success is decided by the status code
alone: the job's `success_codes`, else any 2xx. A JSON body of the form
`{"status", "message", "data"}` is kept as the execution's result whatever its `status` says;
a target that wants a failure recorded answers with a failing status code, which also tells
Chronos whether retrying can help (5xx and 429 retry, other codes do not).

httpx errors are translated in `_httpx_errors`, and nowhere else, so replacing the client is a
change to this module only.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookiejar import CookieJar, DefaultCookiePolicy
from importlib.metadata import version
from typing import Any

import httpx

from services.workers.dispatch.abort import abortable_transport
from services.workers.dispatch.base import Delivery, Outcome
from services.workers.retry import parse_retry_after
from shared.errors import (
    DispatchTimeoutError,
    PermanentDispatchError,
    RetryableDispatchError,
)
from shared.jobs import ApiKeyAuth, BasicAuth, BearerAuth, WebhookTarget
from shared.secrets import resolve
from shared.settings import Settings

# Bodies are stored on the attempt row; a chatty target must not bloat Postgres.
RESPONSE_CAP_BYTES = 64 * 1024
# Idle keep-alive connections kept per process; busy ones are not limited.
KEEPALIVE_CONNECTIONS = 64
_RESULT_KEYS = {"status", "message", "data"}
_RETRY_AFTER_CODES = (429, 503)
# Targets see who calls them (a job's own User-Agent header still wins).
USER_AGENT = f"chronos-worker/{version('chronos-runner')}"
# What h11 will put on the wire as a header value. Checked before sending because h11's own
# error quotes the rejected value, and header values carry resolved secrets.
_SENDABLE_VALUE = re.compile(r"[!-~]+(?:[ \t]+[!-~]+)*")


def create(settings: Settings) -> HttpDispatcher:
    return HttpDispatcher()


class HttpDispatcher:
    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=KEEPALIVE_CONNECTIONS)
        self._client = httpx.Client(
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            # One client serves every job of the process: a cookie one target sets must never
            # ride on another job's delivery, so the jar accepts none.
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            # Proxies and .netrc from the worker's environment must not redirect deliveries.
            trust_env=False,
            # Cancel and attempt deadlines cut a blocked request off from another thread.
            transport=transport or abortable_transport(limits=limits, trust_env=False),
        )

    def dispatch(self, delivery: Delivery) -> Outcome:
        target = delivery.job.webhook
        if target is None:
            raise PermanentDispatchError(f"job {delivery.job.id!r} has no webhook target")
        headers = _headers(delivery, target)
        content = _content(delivery, target)
        timeout = delivery.timeout.total_seconds()
        with _httpx_errors(timeout):
            request = self._client.build_request(
                target.method, str(target.url), headers=headers, content=content, timeout=timeout
            )
            response = self._client.send(
                request, stream=True, follow_redirects=target.follow_redirects
            )
            try:
                body, truncated = _read_capped(response)
            finally:
                response.close()
        return _judge(target, response, body, truncated)

    def close(self) -> None:
        self._client.close()


def _headers(delivery: Delivery, target: WebhookTarget) -> dict[str, str]:
    headers = {name: resolve(value) for name, value in target.headers.items()}
    if target.body is None and delivery.payload is not None:
        headers.setdefault("Content-Type", "application/json")
    headers.update(delivery.id_headers())
    headers["Idempotency-Key"] = str(delivery.execution_id)
    auth = target.auth
    if isinstance(auth, BearerAuth):
        headers["Authorization"] = f"Bearer {resolve(auth.token)}"
    elif isinstance(auth, BasicAuth):
        pair = f"{resolve(auth.username)}:{resolve(auth.password)}".encode()
        headers["Authorization"] = f"Basic {base64.b64encode(pair).decode('ascii')}"
    elif isinstance(auth, ApiKeyAuth):
        headers[auth.header] = resolve(auth.api_key)
    for name, value in headers.items():
        if value and not _SENDABLE_VALUE.fullmatch(value):
            raise PermanentDispatchError(
                f"job {delivery.job.id!r}: the value of header {name!r} cannot be sent (it has "
                "a line break, control or non-ASCII character, or surrounding whitespace)"
            )
    return headers


def _content(delivery: Delivery, target: WebhookTarget) -> bytes | None:
    if target.body is not None:
        return target.body.encode()
    if delivery.payload is None:
        return None
    return json.dumps(delivery.payload, separators=(",", ":")).encode()


@contextmanager
def _httpx_errors(timeout: float) -> Iterator[None]:
    """The one place httpx exceptions become dispatch errors (chained, so the class survives)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise DispatchTimeoutError(f"{type(exc).__name__}: no answer within {timeout:g}s") from exc
    except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
        raise PermanentDispatchError(f"{type(exc).__name__}: {exc}") from exc
    except httpx.TransportError as exc:
        raise RetryableDispatchError(f"{type(exc).__name__}: {exc or 'connection failed'}") from exc
    except (httpx.HTTPError, httpx.StreamError) as exc:
        raise PermanentDispatchError(f"{type(exc).__name__}: {exc}") from exc
    except (ValueError, UnicodeEncodeError) as exc:
        # httpx rejects header names or values it cannot put on the wire.
        raise PermanentDispatchError(f"invalid request: {exc}") from exc


def _read_capped(response: httpx.Response) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > RESPONSE_CAP_BYTES:
            return b"".join(chunks)[:RESPONSE_CAP_BYTES], True
    return b"".join(chunks), False


def _judge(
    target: WebhookTarget, response: httpx.Response, body: bytes, truncated: bool
) -> Outcome:
    code = response.status_code
    text = body.decode("utf-8", errors="replace").replace("\x00", "")
    ok = code in target.success_codes if target.success_codes else 200 <= code < 300
    if ok:
        return Outcome(status_code=code, response=text, result=None if truncated else _result(body))
    message = f"HTTP {code} {response.reason_phrase}".rstrip()
    if code == 429 or code >= 500:
        retry_after = (
            parse_retry_after(response.headers.get("Retry-After"))
            if code in _RETRY_AFTER_CODES
            else None
        )
        raise RetryableDispatchError(
            message, status_code=code, response=text, retry_after=retry_after
        )
    if 300 <= code < 400 and not target.follow_redirects:
        message += " (redirects are followed only with follow_redirects: true)"
    raise PermanentDispatchError(message, status_code=code, response=text)


def _result(body: bytes) -> Any:
    if not body.lstrip().startswith(b"{"):
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if isinstance(value, dict) and "status" in value and set(value) <= _RESULT_KEYS:
        return {key: value.get(key) for key in ("status", "message", "data")}
    return None
