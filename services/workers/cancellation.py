"""Stopping in-flight attempts: cancel requests from the cancel channel, and attempt deadlines.

One `AttemptControl` per worker process runs one thread. It listens on the cancel channel
(`shared.control.cancel_channel`) and watches the deadline of every attempt in flight; either
one sets the attempt's `Delivery.cancelled` and cuts the attempt thread's HTTP connection
(`dispatch.abort`). The runner then reads `AttemptGuard.stopped` to record the attempt
`cancelled` or `timed_out` rather than as the transport error the abort produced.

Ids cancelled in the last `REMEMBER` are kept: a cancel published while a worker was claiming
the execution, before its attempt registered here, still reaches that attempt.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import redis

from services.workers.dispatch.abort import abort_thread
from services.workers.dispatch.base import Delivery, Outcome
from shared.control import cancel_channel
from shared.errors import DispatchError, DispatchTimeoutError
from shared.settings import Settings

log = logging.getLogger(__name__)

# The attempt's own client timeouts (e.g. httpx's read timeout) normally fire first and give the
# clearer error; the deadline here catches what they miss, such as a target trickling bytes.
DEADLINE_GRACE = timedelta(milliseconds=300)
# How often the control thread looks at deadlines (and so the precision of a timeout).
TICK = timedelta(milliseconds=100)
REMEMBER = timedelta(seconds=60)
RECONNECT_DELAY = timedelta(seconds=1)

Stop = Literal["cancelled", "timed_out"]


@dataclass(eq=False)
class AttemptGuard:
    """One attempt in flight. `stopped` says why it was aborted, if it was."""

    delivery: Delivery
    thread: int = field(default_factory=threading.get_ident)
    stopped: Stop | None = None

    def stop(self, why: Stop) -> None:
        # The first reason is the one recorded, but every stop cuts the connections again: a
        # request opened after an earlier stop (a race with the runner's check) must not live on.
        if self.stopped is None:
            self.stopped = why
        self.delivery.cancelled.set()
        abort_thread(self.thread)


class AttemptControl:
    def __init__(self, settings: Settings) -> None:
        self._channel = cancel_channel(settings)
        self._client = redis.Redis.from_url(settings.redis_url)
        self._lock = threading.Lock()
        self._inflight: dict[str, set[AttemptGuard]] = {}
        self._deadlines: list[tuple[float, int, AttemptGuard]] = []
        self._order = itertools.count()
        self._recent: dict[str, float] = {}
        self._closing = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="attempt-control", daemon=True)

    def start(self, wait: timedelta = timedelta(seconds=5)) -> None:
        """Start the control thread; return once subscribed (or after `wait`)."""
        self._thread.start()
        if not self._subscribed.wait(wait.total_seconds()):
            log.warning("cancel channel not subscribed yet", extra={"channel": self._channel})

    def close(self) -> None:
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join()
        self._client.close()

    @contextmanager
    def guard(self, delivery: Delivery) -> Iterator[AttemptGuard]:
        """Run the attempt's dispatch inside this, in the thread that dispatches."""
        attempt = AttemptGuard(delivery)
        key = str(delivery.execution_id)
        deadline = time.monotonic() + (delivery.timeout + DEADLINE_GRACE).total_seconds()
        with self._lock:
            self._inflight.setdefault(key, set()).add(attempt)
            heapq.heappush(self._deadlines, (deadline, next(self._order), attempt))
            already = key in self._recent
        if already:
            attempt.stop("cancelled")
        try:
            yield attempt
        finally:
            with self._lock:
                guards = self._inflight.get(key)
                if guards is not None:
                    guards.discard(attempt)
                    if not guards:
                        del self._inflight[key]
            # Its deadline entry stays in the heap and is dropped when it comes due.

    def _cancelled(self, execution_id: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent[execution_id] = now
            guards = list(self._inflight.get(execution_id, ()))
        for attempt in guards:
            log.info("aborting cancelled attempt", extra={"execution_id": execution_id})
            attempt.stop("cancelled")

    def _expire(self) -> None:
        now = time.monotonic()
        due: list[AttemptGuard] = []
        with self._lock:
            while self._deadlines and self._deadlines[0][0] <= now:
                attempt = heapq.heappop(self._deadlines)[2]
                if attempt in self._inflight.get(str(attempt.delivery.execution_id), ()):
                    due.append(attempt)
            horizon = now - REMEMBER.total_seconds()
            for execution_id in [k for k, at in self._recent.items() if at < horizon]:
                del self._recent[execution_id]
        for attempt in due:
            log.info(
                "aborting attempt past its timeout",
                extra={"execution_id": str(attempt.delivery.execution_id)},
            )
            attempt.stop("timed_out")

    def _run(self) -> None:
        while not self._closing.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self._channel)
                self._subscribed.set()
                while not self._closing.is_set():
                    message = pubsub.get_message(timeout=TICK.total_seconds())
                    if message is not None and message["type"] == "message":
                        data = message["data"]
                        self._cancelled(data.decode() if isinstance(data, bytes) else str(data))
                    self._expire()
            except redis.RedisError as exc:
                # Deadlines must keep working while Redis is away.
                log.warning("cancel channel lost", extra={"error": str(exc)})
                self._closing.wait(RECONNECT_DELAY.total_seconds())
                self._expire()
            finally:
                pubsub.close()


class AttemptCancelledError(DispatchError):
    """The attempt was aborted because its execution was cancelled (final, not retried)."""

    outcome = "cancelled"


def verdict(guard: AttemptGuard | None, result: Outcome | DispatchError) -> Outcome | DispatchError:
    """What to record for an attempt that `guard` may have stopped: the transport error an
    abort produced becomes the reason for the abort. A success that beat the abort stands."""
    if guard is None or guard.stopped is None or isinstance(result, Outcome):
        return result
    if guard.stopped == "cancelled":
        error: DispatchError = AttemptCancelledError("attempt aborted: execution cancelled")
    elif isinstance(result, DispatchTimeoutError):
        return result
    else:
        timeout = guard.delivery.timeout.total_seconds()
        error = DispatchTimeoutError(f"attempt aborted: no answer within {timeout:g}s")
    # Context, not cause: the recorded error class is the abort's reason, not the socket error.
    error.__context__ = result
    return error
