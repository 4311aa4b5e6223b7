"""Job changes as they happen: `LISTEN chronos_jobs` on a dedicated autocommit connection.

The jobs table announces every insert, update and delete with the job id. Notifications sent
while the connection was down are lost, so after every (re)connect the ticker reloads all jobs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg

from shared.db import Connection, connect
from shared.errors import UnavailableError

log = logging.getLogger(__name__)

CHANNEL = "chronos_jobs"
RECONNECT_EVERY = timedelta(seconds=1)


@dataclass
class Changes:
    job_ids: set[str] = field(default_factory=set)
    # Set when notifications may have been missed: every job must be reloaded.
    everything: bool = False


class JobChanges:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._conn: Connection | None = None
        self._next_attempt = 0.0

    def fileno(self) -> int | None:
        """The socket to wait on, or None while disconnected."""
        return self._conn.fileno() if self._conn is not None else None

    def seconds_to_reconnect(self) -> float | None:
        if self._conn is not None:
            return None
        return max(0.0, self._next_attempt - time.monotonic())

    def drain(self) -> Changes:
        """Everything announced since the last call, without waiting."""
        if self._conn is None:
            return Changes(everything=self._connect())
        try:
            return Changes(job_ids={n.payload for n in self._conn.notifies(timeout=0)})
        except psycopg.Error as exc:
            log.warning("job change listener lost", extra={"error": str(exc)})
            self.close()
            return Changes()

    def _connect(self) -> bool:
        if time.monotonic() < self._next_attempt:
            return False
        self._next_attempt = time.monotonic() + RECONNECT_EVERY.total_seconds()
        try:
            conn = connect(self.database_url, autocommit=True)
            conn.execute(f"LISTEN {CHANNEL}")
        except (UnavailableError, psycopg.Error) as exc:
            log.warning("job change listener cannot connect", extra={"error": str(exc)})
            return False
        self._conn = conn
        return True

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except psycopg.Error:
                pass
