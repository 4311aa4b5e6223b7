"""Group commit for the state changes of all worker threads of one process.

Each attempt needs two writes (claim before dispatch, finish after). Written one by one, every
write is a transaction with its own commit, and Postgres round trips and WAL flushes become the
pipeline's next bottleneck after the HTTP client. The recorder thread takes whatever claims and
finishes are waiting, writes them with one statement each in one transaction, and only then
answers the waiting threads, so nothing is acknowledged before it is durable. At low load a
batch is a single request and adds no delay; under load batches grow by themselves.

It also bounds Postgres connections: `WRITERS` per worker process, whatever the thread count.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from uuid import UUID

from shared.db import Database
from shared.store import executions
from shared.store.executions import AttemptEnd, ClaimRow

log = logging.getLogger(__name__)

# Upper bound of requests written per transaction: keeps statements and lock sets small.
MAX_BATCH = 256
# Transactions in flight at once. More overlap commits but makes batches smaller; on a 2-core
# host one measured best (bench/pipeline.py).
WRITERS = 1


@dataclass
class _Claim:
    execution_id: UUID
    future: Future[ClaimRow | None] = field(default_factory=Future)


@dataclass
class _Finish:
    end: AttemptEnd
    future: Future[str | None] = field(default_factory=Future)


_STOP = object()


class Recorder:
    def __init__(self, db: Database, clock: Callable[[], datetime] | None = None) -> None:
        self._db = db
        self._clock = clock or (lambda: datetime.now(UTC))
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._loop, name=f"chronos-recorder-{n}", daemon=True)
            for n in range(WRITERS)
        ]
        for thread in self._threads:
            thread.start()

    def claim(self, execution_id: UUID) -> ClaimRow | None:
        """`executions.claim_many` for one execution; None when it does not exist."""
        request = _Claim(execution_id)
        self._submit(request)
        return request.future.result()

    def finish(self, end: AttemptEnd) -> str | None:
        """`executions.finish_many` for one attempt: the execution's new status, or None if
        it was no longer this attempt's to move."""
        request = _Finish(end)
        self._submit(request)
        return request.future.result()

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join()
        self._threads = []

    def _submit(self, request: _Claim | _Finish) -> None:
        if not self._threads:
            raise RuntimeError("recorder is closed")
        self._queue.put(request)

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            claims = [r for r in batch if isinstance(r, _Claim)]
            ends = [r for r in batch if isinstance(r, _Finish)]
            if claims or ends:
                self._write(claims, ends)
            if _STOP in batch:
                for _ in range(batch.count(_STOP) - 1):
                    self._queue.put(_STOP)
                return

    def _write(self, claims: list[_Claim], ends: list[_Finish]) -> None:
        try:
            with self._db.transaction() as conn:
                moved = executions.finish_many(conn, [r.end for r in ends]) if ends else {}
                ids = [r.execution_id for r in claims]
                claimed = executions.claim_many(conn, ids, self._clock()) if claims else {}
        except Exception as exc:
            for claim in claims:
                claim.future.set_exception(exc)
            for finish in ends:
                finish.future.set_exception(exc)
            return
        seen: set[UUID] = set()
        for claim in claims:
            row = claimed.get(claim.execution_id)
            if row is not None and claim.execution_id in seen:
                # Two messages for one execution in one batch: the claim belongs to the first.
                row = replace(row, claimed_attempt=None)
            seen.add(claim.execution_id)
            claim.future.set_result(row)
        for finish in ends:
            finish.future.set_result(moved.get(finish.end.execution_id))
