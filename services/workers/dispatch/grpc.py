"""gRPC delivery with grpcio: a generic unary call, so users need no generated stubs.

The request is the payload as JSON bytes (`encoding: json`) or, with `encoding: raw`, a string
payload's UTF-8 bytes. The call's metadata is the target's `metadata` plus the id headers,
lower-cased as gRPC requires (`x-chronos-execution-id` is the consumer's dedupe handle); its
deadline is the job's timeout. Status OK is success: the response bytes are kept, and a JSON
`{"status", "message", "data"}` response becomes the execution's result, as with HTTP.
UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED and ABORTED are retried; every other status
fails for good.

One channel per address and TLS flag per process, shared by all worker threads (grpcio
channels are thread-safe); it reconnects by itself, with its backoff capped so a restarted
server is used again within seconds. grpcio errors are translated in `_grpc_errors` only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import grpc

from services.workers.dispatch.base import Delivery, Outcome
from services.workers.dispatch.message import body, reply_result, reply_text
from shared.errors import (
    DispatchError,
    DispatchTimeoutError,
    PermanentDispatchError,
    RetryableDispatchError,
)
from shared.jobs import GrpcTarget
from shared.secrets import resolve
from shared.settings import Settings

# How often a waiting worker thread looks at its attempt's cancel flag.
CANCEL_POLL = timedelta(milliseconds=100)
RECONNECT_BACKOFF_MIN = timedelta(milliseconds=500)
RECONNECT_BACKOFF_MAX = timedelta(seconds=2)
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)


def create(settings: Settings) -> GrpcDispatcher:
    return GrpcDispatcher()


class GrpcDispatcher:
    def __init__(self) -> None:
        self._channels: dict[tuple[str, bool], grpc.Channel] = {}
        self._lock = threading.Lock()

    def dispatch(self, delivery: Delivery) -> Outcome:
        target = delivery.job.grpc
        if target is None:
            raise PermanentDispatchError(f"job {delivery.job.id!r} has no grpc target")
        request = _request(delivery, target)
        metadata = [(name.lower(), resolve(value)) for name, value in target.metadata.items()]
        metadata += [(name.lower(), value) for name, value in delivery.id_headers().items()]
        method = "/" + target.method.lstrip("/")
        with _grpc_errors(target, delivery.timeout):
            call = self._channel(target).unary_unary(method)
            future = call.future(
                request, timeout=delivery.timeout.total_seconds(), metadata=metadata
            )
            response: bytes = _wait(future, delivery)
        result = reply_result(response) if target.encoding == "json" else None
        return Outcome(
            status_code=grpc.StatusCode.OK.value[0], response=reply_text(response), result=result
        )

    def _channel(self, target: GrpcTarget) -> grpc.Channel:
        key = (target.address, target.tls)
        with self._lock:
            channel = self._channels.get(key)
            if channel is None:
                options = [
                    ("grpc.min_reconnect_backoff_ms", _ms(RECONNECT_BACKOFF_MIN)),
                    ("grpc.initial_reconnect_backoff_ms", _ms(RECONNECT_BACKOFF_MIN)),
                    ("grpc.max_reconnect_backoff_ms", _ms(RECONNECT_BACKOFF_MAX)),
                    ("grpc.primary_user_agent", "chronos-worker"),
                ]
                channel = (
                    grpc.secure_channel(target.address, grpc.ssl_channel_credentials(), options)
                    if target.tls
                    else grpc.insecure_channel(target.address, options)
                )
                self._channels[key] = channel
            return channel

    def close(self) -> None:
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()


def _ms(value: timedelta) -> int:
    return int(value.total_seconds() * 1000)


def _request(delivery: Delivery, target: GrpcTarget) -> bytes:
    if target.encoding == "json":
        return body(delivery)
    if delivery.payload is None:
        return b""
    if isinstance(delivery.payload, str):
        return delivery.payload.encode()
    raise PermanentDispatchError(
        f"grpc {target.method}: encoding 'raw' needs a string payload, "
        f"got {type(delivery.payload).__name__}"
    )


def _wait(future: grpc.Future, delivery: Delivery) -> bytes:
    """The call's response; a cancelled attempt cancels the call (the server sees CANCELLED)."""
    while True:
        try:
            response: bytes = future.result(timeout=CANCEL_POLL.total_seconds())
        except grpc.FutureTimeoutError:
            if delivery.cancelled.is_set():
                future.cancel()
                raise RetryableDispatchError("attempt aborted before the server answered") from None
            continue
        return response


@contextmanager
def _grpc_errors(target: GrpcTarget, timeout: timedelta) -> Iterator[None]:
    """The one place grpcio exceptions become dispatch errors."""
    where = f"grpc {target.address} {target.method}"
    try:
        yield
    except DispatchError:
        raise
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        number = code.value[0]
        details = exc.details() or ""
        message = f"{where}: {code.name} {details}".rstrip()
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            raise DispatchTimeoutError(
                f"{where}: no answer within {timeout.total_seconds():g}s", status_code=number
            ) from exc
        error = RetryableDispatchError if code in _RETRYABLE else PermanentDispatchError
        raise error(message, status_code=number, response=details or None) from exc
    except (ValueError, TypeError) as exc:
        # grpcio rejects malformed metadata or addresses with these.
        raise PermanentDispatchError(f"{where}: {exc}") from exc
