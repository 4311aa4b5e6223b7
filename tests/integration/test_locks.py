"""The job slots' Lua scripts against the real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis

from shared.locks import JobSlots, holder_execution
from shared.settings import Settings, load_settings
from tests.conftest import REDIS_URL


@pytest.fixture
def ns_settings(namespace: str) -> Settings:
    return load_settings(redis_url=REDIS_URL, chronos_namespace=namespace)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(REDIS_URL)
    yield c
    c.close()


def test_one_slot_excludes_a_second_holder_until_release(
    client: redis.Redis, ns_settings: Settings
) -> None:
    slots = JobSlots(client, ns_settings)
    first, second = JobSlots.new_token("e1"), JobSlots.new_token("e2")
    assert slots.try_acquire("job", first)
    assert not slots.try_acquire("job", second)
    assert [holder_execution(t) for t in slots.holders("job")] == ["e1"]
    slots.release("job", first)
    assert slots.try_acquire("job", second)
    assert slots.holders("job") == [second]


def test_release_by_a_stranger_leaves_the_holder_in_place(
    client: redis.Redis, ns_settings: Settings
) -> None:
    slots = JobSlots(client, ns_settings)
    holder = JobSlots.new_token("e1")
    assert slots.try_acquire("job", holder)
    slots.release("job", JobSlots.new_token("e1"))
    assert slots.holders("job") == [holder]
    assert not slots.renew("job", JobSlots.new_token("e1"))


def test_max_concurrency_admits_exactly_n(client: redis.Redis, ns_settings: Settings) -> None:
    slots = JobSlots(client, ns_settings)
    tokens = [JobSlots.new_token(f"e{i}") for i in range(5)]
    admitted = [t for t in tokens if slots.try_acquire("job", t, limit=3)]
    assert admitted == tokens[:3]
    assert sorted(slots.holders("job")) == sorted(tokens[:3])


def test_unrenewed_slot_lapses_after_ttl_and_key_expires(
    client: redis.Redis, ns_settings: Settings
) -> None:
    slots = JobSlots(client, ns_settings, ttl=timedelta(milliseconds=400))
    dead_worker = JobSlots.new_token("e1")
    assert slots.try_acquire("job", dead_worker)
    assert 0 < client.pttl(ns_settings.key("lock", "job")) <= 400
    assert not slots.try_acquire("job", JobSlots.new_token("e2"))
    time.sleep(0.5)
    assert slots.holders("job") == []
    assert not slots.renew("job", dead_worker)
    assert slots.try_acquire("job", JobSlots.new_token("e2"))


def test_lease_is_renewed_while_held_and_freed_on_release(
    client: redis.Redis, ns_settings: Settings
) -> None:
    slots = JobSlots(client, ns_settings, ttl=timedelta(milliseconds=400))
    with slots.holding("job", JobSlots.new_token("e1")) as lease:
        assert lease is not None
        time.sleep(1.0)  # 2.5 TTLs: only renewal keeps it
        assert not slots.try_acquire("job", JobSlots.new_token("e2"))
        assert not lease.lost.is_set()
    assert slots.holders("job") == []
    assert client.exists(ns_settings.key("lock", "job")) == 0


def test_evicted_lease_notices_it_was_lost(client: redis.Redis, ns_settings: Settings) -> None:
    slots = JobSlots(client, ns_settings, ttl=timedelta(milliseconds=300))
    token = JobSlots.new_token("e1")
    lease = slots.lease("job", token)
    assert lease is not None
    slots.release("job", token)
    assert lease.lost.wait(1.0)
    lease.release()
