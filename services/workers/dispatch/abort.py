"""Aborting a blocking HTTP request from another thread (cancel, `replace`, attempt deadline).

A sync httpx request blocks its thread in `recv` and offers no handle to interrupt it. So the
HTTP dispatcher's connection pool gets its sockets from `AbortableBackend`, whose streams note
the last thread that read or wrote them; `abort_thread(ident)` shuts down the sockets that
thread is using. The blocked `recv` returns at once, httpx raises a transport error, and the
target sees its connection closed. Only this module and the HTTP dispatcher know about it.
"""

from __future__ import annotations

import socket
import threading
import weakref
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx


class _TrackedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, registry: _Registry) -> None:
        self._inner = inner
        self._registry = registry
        self.owner = threading.get_ident()
        registry.add(self)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.owner = threading.get_ident()
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.owner = threading.get_ident()
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._registry.discard(self)
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        self._registry.discard(self)
        return _TrackedStream(
            self._inner.start_tls(ssl_context, server_hostname, timeout), self._registry
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    def shutdown(self) -> None:
        sock = self._inner.get_extra_info("socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its owner: nothing left to abort


class _Registry:
    def __init__(self) -> None:
        self._streams: weakref.WeakSet[_TrackedStream] = weakref.WeakSet()
        self._lock = threading.Lock()

    def add(self, stream: _TrackedStream) -> None:
        with self._lock:
            self._streams.add(stream)

    def discard(self, stream: _TrackedStream) -> None:
        with self._lock:
            self._streams.discard(stream)

    def of_thread(self, ident: int) -> list[_TrackedStream]:
        with self._lock:
            return [s for s in self._streams if s.owner == ident]


_registry = _Registry()


class AbortableBackend(httpcore.NetworkBackend):
    """httpcore's sync backend, with every stream registered for `abort_thread`."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _TrackedStream(stream, _registry)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, timeout, socket_options)
        return _TrackedStream(stream, _registry)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def abortable_transport(**kwargs: Any) -> httpx.HTTPTransport:
    """An `httpx.HTTPTransport` (same arguments) whose requests `abort_thread` can cut off.

    httpx does not take a network backend, so it is set on the transport's httpcore pool; the
    abort tests fail loudly if a new httpx or httpcore moves that attribute.
    """
    transport = httpx.HTTPTransport(**kwargs)
    pool = transport._pool
    if not hasattr(pool, "_network_backend"):
        raise RuntimeError("httpcore connection pool has no _network_backend; update abort.py")
    pool._network_backend = AbortableBackend()
    return transport


def abort_thread(ident: int) -> int:
    """Shut down the connections thread `ident` is using; return how many were cut."""
    streams = _registry.of_thread(ident)
    for stream in streams:
        stream.shutdown()
    return len(streams)
