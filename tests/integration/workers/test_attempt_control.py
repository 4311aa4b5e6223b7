"""Aborting in-flight HTTP attempts (cancel message, deadline) against a real hanging target."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
import redis

from services.workers.cancellation import AttemptControl
from services.workers.dispatch.base import Delivery
from services.workers.dispatch.http import HttpDispatcher
from shared.control import cancel_channel
from shared.errors import DispatchError
from shared.jobs import Job
from shared.settings import Settings, load_settings
from tests.conftest import REDIS_URL


class HangingTarget:
    """Accepts connections, reads the request, never answers; records when each closes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.opened: list[float] = []
        self.closed: list[float] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    self.closed.append(time.monotonic())
                    return
                if b"\r\n\r\n" in data:
                    self.opened.append(time.monotonic())

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def target() -> Iterator[HangingTarget]:
    t = HangingTarget()
    yield t
    t.close()


@pytest.fixture
def ns_settings(namespace: str) -> Settings:
    return load_settings(redis_url=REDIS_URL, chronos_namespace=namespace)


@pytest.fixture
def control(ns_settings: Settings) -> Iterator[AttemptControl]:
    c = AttemptControl(ns_settings)
    c.start()
    yield c
    c.close()


def _delivery(port: int, timeout: timedelta) -> Delivery:
    job = Job.model_validate({"id": "hang", "webhook": {"url": f"http://127.0.0.1:{port}/"}})
    return Delivery(
        execution_id=uuid4(),
        job=job,
        attempt=1,
        scheduled_at=datetime.now(UTC),
        payload={"n": 1},
        timeout=timeout,
    )


def _wait_for(predicate: object, deadline_s: float = 5.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_cancel_message_aborts_the_request_and_closes_the_connection(
    target: HangingTarget, control: AttemptControl, ns_settings: Settings
) -> None:
    dispatcher = HttpDispatcher()
    delivery = _delivery(target.port, timedelta(seconds=30))
    outcome: dict[str, object] = {}

    def run() -> None:
        with control.guard(delivery) as guard:
            try:
                dispatcher.dispatch(delivery)
            except DispatchError as exc:
                outcome["error"] = exc
            outcome["stopped"] = guard.stopped
            outcome["at"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    _wait_for(lambda: target.opened)
    client = redis.Redis.from_url(REDIS_URL)
    sent = time.monotonic()
    client.publish(cancel_channel(ns_settings), str(delivery.execution_id))
    client.close()
    thread.join(5)
    assert outcome["stopped"] == "cancelled"
    assert isinstance(outcome["error"], DispatchError)
    assert delivery.cancelled.is_set()
    assert float(outcome["at"]) - sent < 1.0  # type: ignore[arg-type]
    _wait_for(lambda: target.closed)
    dispatcher.close()


def test_deadline_aborts_an_attempt_that_outlives_the_timeout(
    target: HangingTarget, control: AttemptControl
) -> None:
    dispatcher = HttpDispatcher()
    delivery = _delivery(target.port, timedelta(seconds=1))
    started = time.monotonic()
    # A trickling target defeats httpx's per-read timeout; model it by giving the request a
    # read timeout longer than the job's timeout, so only the deadline can end the attempt.
    with control.guard(delivery) as guard, pytest.raises(DispatchError):
        dispatcher.dispatch(_with_timeout(delivery, timedelta(seconds=20)))
    elapsed = time.monotonic() - started
    assert guard.stopped == "timed_out"
    assert 1.0 <= elapsed < 2.0
    _wait_for(lambda: target.closed)
    dispatcher.close()


def _with_timeout(delivery: Delivery, timeout: timedelta) -> Delivery:
    return Delivery(
        execution_id=delivery.execution_id,
        job=delivery.job,
        attempt=delivery.attempt,
        scheduled_at=delivery.scheduled_at,
        payload=delivery.payload,
        timeout=timeout,
        cancelled=delivery.cancelled,
    )


def test_cancel_published_before_the_attempt_registers_still_stops_it(
    control: AttemptControl, ns_settings: Settings
) -> None:
    delivery = _delivery(1, timedelta(seconds=30))
    client = redis.Redis.from_url(REDIS_URL)
    client.publish(cancel_channel(ns_settings), str(delivery.execution_id))
    client.close()
    time.sleep(0.3)
    with control.guard(delivery) as guard:
        assert guard.stopped == "cancelled"
        assert delivery.cancelled.is_set()
