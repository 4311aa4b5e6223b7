"""Postgres access: one connection pool per process, dict rows, and the error boundary.

Pools are sized to the threads that use them (see README, "Connection budget"): a worker
process with N threads needs N connections, not the default pool maximum.
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import set_json_dumps
from psycopg_pool import ConnectionPool, PoolTimeout

from shared.errors import UnavailableError

Connection = psycopg.Connection[DictRow]

CONNECT_TIMEOUT_S = 5
POOL_TIMEOUT_S = 5.0
# A connection used less than this long ago is reused without a liveness check: the check
# is a round trip, and on a busy pool it would add one to every transaction.
CHECK_IDLE_AFTER_S = 1.0


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


set_json_dumps(_compact_json)


def connect(url: str, *, autocommit: bool = False) -> Connection:
    """One direct connection (migrations, LISTEN); use a pool for request work."""
    try:
        return psycopg.connect(
            url, row_factory=dict_row, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S
        )
    except psycopg.OperationalError as exc:
        raise UnavailableError(f"Postgres unavailable: {_first_line(exc)}") from exc


class Database:
    """A pool of connections; `transaction()` is the one way request code touches Postgres."""

    def __init__(self, url: str, *, max_size: int = 10, min_size: int = 1) -> None:
        self.url = url
        self._used_at: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()
        self.pool: ConnectionPool[Connection] = ConnectionPool(
            url,
            min_size=min(min_size, max_size),
            max_size=max_size,
            kwargs={"row_factory": dict_row, "connect_timeout": CONNECT_TIMEOUT_S},
            timeout=POOL_TIMEOUT_S,
            # A connection broken by a Postgres restart is dropped before reuse, so service
            # resumes without restarting the process.
            check=self._check,
            open=False,
            name="chronos",
        )
        self.pool.open(wait=False)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection inside one transaction; Postgres errors become UnavailableError when
        they mean "try again later", and propagate unchanged otherwise."""
        try:
            with self.pool.connection() as conn:
                try:
                    yield conn
                finally:
                    # Noted here rather than in a pool `reset` callback, which would move
                    # every return of a connection onto the pool's worker thread.
                    self._used_at[conn] = time.monotonic()
        except PoolTimeout as exc:
            raise UnavailableError("Postgres unavailable: no connection within timeout") from exc
        except psycopg.OperationalError as exc:
            raise UnavailableError(f"Postgres unavailable: {_first_line(exc)}") from exc

    def close(self) -> None:
        self.pool.close()

    def _check(self, conn: Connection) -> None:
        if time.monotonic() - self._used_at.get(conn, 0.0) >= CHECK_IDLE_AFTER_S:
            ConnectionPool.check_connection(conn)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
