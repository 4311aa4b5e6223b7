"""The concurrency gate's decisions against the real Redis (no worker processes)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import redis
from worker_fixtures import REDIS_URL

from services.workers.concurrency import Admit, ConcurrencyGate, Defer, Skip
from shared.jobs import Job
from shared.locks import JobSlots
from shared.ratelimit import RateLimiter
from shared.settings import load_settings


def job(**fields: Any) -> Job:
    return Job.model_validate({"id": "gated", "webhook": {"url": "http://127.0.0.1:9/"}, **fields})


@pytest.fixture
def parts(namespace: str) -> Iterator[tuple[JobSlots, RateLimiter, list[tuple[UUID, str]]]]:
    client = redis.Redis.from_url(REDIS_URL)
    settings = load_settings(redis_url=REDIS_URL, chronos_namespace=namespace)
    yield JobSlots(client, settings, ttl=timedelta(seconds=1)), RateLimiter(client, settings), []
    client.close()


def gate(
    parts: tuple[JobSlots, RateLimiter, list[tuple[UUID, str]]], **kwargs: Any
) -> ConcurrencyGate:
    slots, limiter, cancelled = parts
    return ConcurrencyGate(slots, limiter, lambda e, r: cancelled.append((e, r)), **kwargs)


def test_allow_without_limit_takes_no_slot(parts: Any) -> None:
    decision = gate(parts).enter(uuid4(), job(), threading.Event())
    assert decision == Admit()


def test_max_concurrency_admits_n_then_defers(parts: Any) -> None:
    g = gate(parts)
    limited = job(max_concurrency=2)
    first, second, third = (g.enter(uuid4(), limited, threading.Event()) for _ in range(3))
    assert isinstance(first, Admit) and isinstance(second, Admit)
    assert isinstance(third, Defer)
    assert "all 2 slots" in third.reason
    first.release()
    assert isinstance(g.enter(uuid4(), limited, threading.Event()), Admit)
    second.release()


def test_forbid_skips_naming_the_running_execution(parts: Any) -> None:
    g = gate(parts)
    holder_id = uuid4()
    holder = g.enter(holder_id, job(concurrency_policy="forbid"), threading.Event())
    assert isinstance(holder, Admit)
    skipped = g.enter(uuid4(), job(concurrency_policy="forbid"), threading.Event())
    assert skipped == Skip(
        f"job gated is still running execution {holder_id} (concurrency_policy forbid)"
    )
    holder.release()


def test_replace_cancels_the_holder_and_evicts_it_if_it_does_not_let_go(parts: Any) -> None:
    g = gate(parts, replace_wait=timedelta(milliseconds=300))
    slots, _, cancelled = parts
    old_id, new_id = uuid4(), uuid4()
    old = g.enter(old_id, job(concurrency_policy="replace"), threading.Event())
    assert isinstance(old, Admit)
    started = time.monotonic()
    new = g.enter(new_id, job(concurrency_policy="replace"), threading.Event())
    assert isinstance(new, Admit)
    assert time.monotonic() - started >= 0.3
    assert cancelled == [(old_id, f"replaced by execution {new_id} (concurrency_policy replace)")]
    assert [t.split("/")[0] for t in slots.holders("gated")] == [str(new_id)]
    assert old.lease is not None and old.lease.lost.wait(5)
    old.release()
    new.release()


def test_rate_limit_defers_turns_beyond_the_wait_bound(parts: Any) -> None:
    g = gate(parts)
    slow = job(rate_limit={"per_second": 1})
    # A set event ends each wait for a turn at once, so the four calls ask within milliseconds.
    no_wait = threading.Event()
    no_wait.set()
    decisions = [g.enter(uuid4(), slow, no_wait) for _ in range(4)]
    # Turns at about 0, 1.05 and 2.1 s; the last is beyond MAX_RATE_WAIT (2 s).
    assert [type(d) for d in decisions] == [Admit, Admit, Defer, Defer]
    deferred = decisions[3]
    assert isinstance(deferred, Defer)
    assert "rate limit of job gated (1/s)" == deferred.reason
    assert deferred.delay > timedelta(0)
