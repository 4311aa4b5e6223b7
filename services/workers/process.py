"""Everything one worker process holds for its lifetime, built once and closed at shutdown."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
import redis
from dramatiq.middleware import Middleware

from services.workers.actors import declare_execute, worker_middleware
from services.workers.cancellation import AttemptControl
from services.workers.concurrency import build_gate
from services.workers.dispatch import Dispatchers
from services.workers.recorder import WRITERS, Recorder
from services.workers.runner import Runner
from shared.broker import Enqueuer, make_broker, queue_name
from shared.db import Database
from shared.settings import Settings

log = logging.getLogger(__name__)

# Connections per process: the recorder's writers, plus one for the rare take-over of an
# attempt whose worker died. Thread count does not matter (see recorder.py): N processes need
# N * (WRITERS + 1), 4N by default.
DB_POOL_SIZE = WRITERS + 1
# Out of a million Redis broker commands, how many also requeue the messages of dead workers.
# Dramatiq's default (1,000) leaves a dead worker's message waiting for minutes on a quiet
# queue; the check is two sorted-set lookups when no worker is dead.
REDIS_MAINTENANCE_CHANCE = 100_000


class WorkerProcess:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.broker = make_broker(settings, [*worker_middleware(), _Shutdown(self)])
        if settings.broker_kind == "redis":
            self.broker.heartbeat_timeout = int(  # type: ignore[attr-defined]
                settings.worker_heartbeat_timeout.total_seconds() * 1000
            )
            self.broker.maintenance_chance = REDIS_MAINTENANCE_CHANCE  # type: ignore[attr-defined]
        self.db = Database(settings.database_url, max_size=DB_POOL_SIZE)
        self.recorder = Recorder(self.db)
        self.dispatchers = Dispatchers(settings)
        self.redis = redis.Redis.from_url(settings.redis_url)
        self.control = AttemptControl(settings)
        self.control.start()
        self.runner = Runner(
            self.db,
            self.recorder,
            self.dispatchers,
            Enqueuer(self.broker, queue_name(settings)),
            gate=build_gate(settings, self.db, self.redis),
            control=self.control,
        )
        self.actor = declare_execute(self.broker, settings, self.runner)

    def close(self) -> None:
        self.control.close()
        self.recorder.close()
        self.dispatchers.close()
        self.redis.close()
        self.db.close()


class _Shutdown(Middleware):
    """Releases the process's clients once Dramatiq has stopped its worker threads."""

    def __init__(self, process: WorkerProcess) -> None:
        self.process = process

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self.process.close()
