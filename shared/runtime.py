"""The long-lived resources of one process, built once in `main()` and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import dramatiq
import redis

from shared.broker import Enqueuer, make_broker, queue_name
from shared.db import Database
from shared.settings import Settings
from shared.triggers import Triggers


@dataclass
class Runtime:
    settings: Settings
    db_pool_size: int | None = None

    @cached_property
    def db(self) -> Database:
        return Database(
            self.settings.database_url, max_size=self.db_pool_size or self.settings.db_pool_size
        )

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url)

    @cached_property
    def broker(self) -> dramatiq.Broker:
        return make_broker(self.settings)

    @cached_property
    def enqueuer(self) -> Enqueuer:
        return Enqueuer(self.broker, queue_name(self.settings))

    @cached_property
    def triggers(self) -> Triggers:
        return Triggers(self.db, self.enqueuer)

    def close(self) -> None:
        for name in ("db", "broker", "redis"):
            if name in self.__dict__:
                self.__dict__.pop(name).close()
