"""The registry: a job's target kind → its dispatcher, imported on first use.

Each protocol lives in its own module exposing `create(settings) -> Dispatcher`; a kind whose
module or client library is missing fails its executions permanently with an install hint,
and costs nothing in processes that never see such a job.
"""

from __future__ import annotations

import importlib
import logging
import threading

from services.workers.dispatch.base import Dispatcher
from shared.errors import PermanentDispatchError
from shared.jobs import TargetKind
from shared.settings import Settings

log = logging.getLogger(__name__)

_MODULES: dict[str, str] = {
    "webhook": "services.workers.dispatch.http",
    "kafka": "services.workers.dispatch.kafka",
    "nats": "services.workers.dispatch.nats",
    "rabbitmq": "services.workers.dispatch.rabbitmq",
    "grpc": "services.workers.dispatch.grpc",
}
_EXTRAS = {"kafka": "kafka", "nats": "nats", "rabbitmq": "rabbitmq", "grpc": "grpc"}


class Dispatchers:
    """One dispatcher per target kind per process, shared by all worker threads."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._made: dict[str, Dispatcher] = {}
        self._lock = threading.Lock()

    def get(self, kind: TargetKind) -> Dispatcher:
        made = self._made.get(kind)
        if made is not None:
            return made
        with self._lock:
            if kind not in self._made:
                self._made[kind] = self._create(kind)
            return self._made[kind]

    def _create(self, kind: str) -> Dispatcher:
        try:
            module = importlib.import_module(_MODULES[kind])
        except ImportError as exc:
            extra = _EXTRAS.get(kind)
            hint = f"; install chronos-runner[{extra}]" if extra else ""
            raise PermanentDispatchError(
                f"no dispatcher for {kind!r} targets in this worker ({exc}){hint}"
            ) from exc
        dispatcher: Dispatcher = module.create(self._settings)
        return dispatcher

    def close(self) -> None:
        with self._lock:
            made, self._made = self._made, {}
        for kind, dispatcher in made.items():
            try:
                dispatcher.close()
            except Exception:
                log.exception("dispatcher close failed", extra={"target_kind": kind})
