"""NATS delivery with nats-py: one connection per server and credentials, per process.

Three modes, three meanings of success:
- `publish`: the server has the message (a PING/PONG flush after the publish);
- `request`: a reply arrived and does not report an error, read like an HTTP response: a
  `Nats-Service-Error-Code` header is the status (5xx and 429 retry, others fail), and a JSON
  `{"status": "error"}` body is a failure of the consumer (retried, like an HTTP 500);
- `jetstream`: the stream's publish ack. `Nats-Msg-Id` is the execution id, so a stream with
  a duplicate window stores a retried publish once.

"No responders" to a request is retried: it means nobody subscribes to the subject right now
(a consumer restarting or deploying), the NATS form of HTTP 503. A JetStream publish that no
stream captures fails permanently: that is the job's configuration, not a passing state.
nats-py reconnects by itself; while it is reconnecting, attempts fail fast as retryable rather
than leaving messages in its outgoing buffer. Errors are translated in `_nats_errors` only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.protocol.parser import AUTHORIZATION_VIOLATION

from services.workers.dispatch.base import Delivery, Outcome
from services.workers.dispatch.loop import LoopThread
from services.workers.dispatch.message import ack_text, body, reply_result, reply_text, wait_limit
from shared.errors import (
    DispatchError,
    DispatchTimeoutError,
    PermanentDispatchError,
    RetryableDispatchError,
)
from shared.jobs import NatsTarget
from shared.secrets import resolve
from shared.settings import Settings

log = logging.getLogger(__name__)

# nats-py gives up after 60 attempts by default; a worker must outlive any server outage.
RECONNECT_WAIT = timedelta(seconds=1)
CONNECT_TIMEOUT = timedelta(seconds=2)
_SERVICE_ERROR = "Nats-Service-Error"
_SERVICE_ERROR_CODE = "Nats-Service-Error-Code"
_PERMANENT = (
    nats.errors.AuthorizationError,
    nats.errors.InvalidUserCredentialsError,
    nats.errors.BadSubjectError,
    nats.errors.BadHeaderError,
    nats.errors.MaxPayloadError,
    nats.errors.SecureConnRequiredError,
    nats.errors.SecureConnWantedError,
    nats.errors.SecureConnFailedError,
)


def create(settings: Settings) -> NatsDispatcher:
    return NatsDispatcher(settings)


@dataclass(frozen=True)
class _ConnectionKey:
    url: str
    user: str | None
    password: str | None
    token: str | None


class NatsDispatcher:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loop = LoopThread("nats-dispatch")
        # Touched only on the loop thread.
        self._connections: dict[_ConnectionKey, Client] = {}
        self._connecting: asyncio.Lock | None = None

    def dispatch(self, delivery: Delivery) -> Outcome:
        target = delivery.job.nats
        if target is None:
            raise PermanentDispatchError(f"job {delivery.job.id!r} has no nats target")
        key = _ConnectionKey(
            url=target.url,
            user=_resolved(target.user),
            password=_resolved(target.password),
            token=_resolved(target.token),
        )
        headers = {**delivery.id_headers(), "Nats-Msg-Id": str(delivery.execution_id)}
        limit = wait_limit(delivery, target.timeout, self._settings.nats_timeout)
        with _nats_errors(target, limit):
            return self._loop.run(
                self._send(key, target, body(delivery), headers, limit), limit, delivery.cancelled
            )

    async def _send(
        self,
        key: _ConnectionKey,
        target: NatsTarget,
        data: bytes,
        headers: dict[str, str],
        limit: timedelta,
    ) -> Outcome:
        client = await self._connection(key)
        seconds = limit.total_seconds()
        if target.mode == "request":
            reply = await client.request(target.subject, data, timeout=seconds, headers=headers)
            return _judge_reply(target, reply)
        if target.mode == "jetstream":
            ack = await client.jetstream().publish(
                target.subject, data, timeout=seconds, headers=headers
            )
            return Outcome(
                response=ack_text(stream=ack.stream, seq=ack.seq, duplicate=bool(ack.duplicate))
            )
        await client.publish(target.subject, data, headers=headers)
        await client.flush(timeout=seconds)  # type: ignore[arg-type]
        return Outcome(response=ack_text(flushed=True))

    async def _connection(self, key: _ConnectionKey) -> Client:
        client = self._connections.get(key)
        if client is None or client.is_closed:
            client = await self._connect(key)
        if not client.is_connected:
            raise RetryableDispatchError(f"nats {key.url}: connection lost, reconnecting")
        return client

    async def _connect(self, key: _ConnectionKey) -> Client:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            client = self._connections.get(key)
            if client is not None and not client.is_closed:
                return client
            client = await nats.connect(
                key.url,
                user=key.user,
                password=key.password,
                token=key.token,
                name="chronos-worker",
                connect_timeout=CONNECT_TIMEOUT.total_seconds(),
                reconnect_time_wait=RECONNECT_WAIT.total_seconds(),
                # A server down at the first connect fails this attempt within about one
                # RECONNECT_WAIT (nats-py would otherwise keep retrying inside `connect`);
                # once connected, the client reconnects for as long as the worker lives.
                max_reconnect_attempts=1,
                allow_reconnect=False,
                error_cb=_on_error,
            )
            client.options["max_reconnect_attempts"] = -1
            client.options["allow_reconnect"] = True
            self._connections[key] = client
            return client

    def close(self) -> None:
        async def close_all() -> None:
            clients, self._connections = list(self._connections.values()), {}
            for client in clients:
                await client.close()

        self._loop.shutdown(close_all)


def _resolved(value: str | None) -> str | None:
    return None if value is None else resolve(value)


async def _on_error(exc: Exception) -> None:
    # nats-py reports every failed reconnect here; the attempts themselves carry the error.
    log.warning("nats connection error", extra={"error": str(exc) or type(exc).__name__})


def _judge_reply(target: NatsTarget, reply: Msg) -> Outcome:
    text = reply_text(reply.data)
    result = reply_result(reply.data)
    headers = reply.headers or {}
    code_text = headers.get(_SERVICE_ERROR_CODE)
    if code_text is not None:
        code = int(code_text) if code_text.isdigit() else None
        message = (
            f"nats reply on {target.subject!r}: error {code_text} {headers.get(_SERVICE_ERROR, '')}"
        )
        retry = code is None or code == 429 or code >= 500
        error = RetryableDispatchError if retry else PermanentDispatchError
        raise error(message.rstrip(), status_code=code, response=text)
    if result is not None and result["status"] == "error":
        detail = f": {result['message']}" if result["message"] else ""
        raise RetryableDispatchError(
            f"nats reply on {target.subject!r} reports status error{detail}", response=text
        )
    return Outcome(response=text, result=result)


@contextmanager
def _nats_errors(target: NatsTarget, limit: timedelta) -> Iterator[None]:
    """The one place nats-py exceptions become dispatch errors."""
    where = f"nats {target.url} subject {target.subject!r}"
    try:
        yield
    except DispatchError:
        raise
    except nats.js.errors.NoStreamResponseError as exc:
        raise PermanentDispatchError(f"{where}: no JetStream stream captures the subject") from exc
    except nats.js.errors.APIError as exc:
        error = RetryableDispatchError if exc.code == 503 else PermanentDispatchError
        raise error(f"{where}: JetStream error {exc.code}: {exc.description}") from exc
    except nats.errors.NoRespondersError as exc:
        raise RetryableDispatchError(f"{where}: no responders for the request") from exc
    except TimeoutError as exc:
        # nats.errors.TimeoutError is an asyncio.TimeoutError, the builtin since Python 3.11.
        waited = "reply" if target.mode == "request" else "ack"
        raise DispatchTimeoutError(
            f"{where}: no {waited} within {limit.total_seconds():g}s"
        ) from exc
    except _PERMANENT as exc:
        raise PermanentDispatchError(f"{where}: {type(exc).__name__}: {exc}") from exc
    except (nats.errors.Error, OSError) as exc:
        # At connect, nats-py reports a refused login as a bare Error, not AuthorizationError.
        refused = AUTHORIZATION_VIOLATION in str(exc).lower()
        error = PermanentDispatchError if refused else RetryableDispatchError
        raise error(f"{where}: {type(exc).__name__}: {exc}") from exc
