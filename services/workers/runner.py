"""One execution message, framework-free: claim, dispatch, record, then finish or schedule a retry.

Messages arrive at least once, so everything here is safe to repeat: a claim moves only a
claimable execution, a finish moves only the attempt that was claimed, and an execution that
is already terminal is acknowledged and left alone.

A message for a `running` execution means the worker of its current attempt died (the broker
redelivered its unacknowledged message) or a duplicate arrived while that attempt is still in
flight. The two are told apart by the attempt's lease (job timeout plus a grace period): before
it expires the message is put back with a delay, after it the attempt is recorded as lost and
the next one starts. Waiting between attempts is a delayed message, never a sleeping thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from pydantic import ValidationError

from services.workers import observe
from services.workers.cancellation import (
    AttemptCancelledError,
    AttemptControl,
    AttemptGuard,
    verdict,
)
from services.workers.concurrency import Admit, ConcurrencyGate, Defer, Skip
from services.workers.dispatch import Dispatchers
from services.workers.dispatch.base import Delivery, Outcome
from services.workers.recorder import Recorder
from services.workers.retry import backoff, should_retry
from shared.broker import Enqueuer
from shared.db import Database
from shared.errors import DispatchError, DispatchTimeoutError, PermanentDispatchError
from shared.jobs import Job
from shared.store import executions
from shared.store.executions import AttemptEnd, ClaimRow

log = logging.getLogger(__name__)

# How long past the job's timeout an attempt may still be finishing its own bookkeeping.
LEASE_GRACE = timedelta(seconds=2)
# Parsed job snapshots kept per process; executions of one job share one snapshot text.
SNAPSHOT_CACHE_SIZE = 512


class Runner:
    def __init__(
        self,
        db: Database,
        recorder: Recorder,
        dispatchers: Dispatchers,
        enqueuer: Enqueuer,
        clock: Callable[[], datetime] | None = None,
        gate: ConcurrencyGate | None = None,
        control: AttemptControl | None = None,
    ) -> None:
        self._db = db
        self._recorder = recorder
        self._dispatchers = dispatchers
        self._enqueuer = enqueuer
        # Concurrency policy and rate limit; cancel and deadline aborts. Without them every
        # attempt is admitted and only the dispatcher's own timeouts bound it.
        self._gate = gate
        self._control = control
        self._clock = clock or (lambda: datetime.now(UTC))
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._jobs_lock = threading.Lock()

    def run(self, execution_id: UUID, traceparent: str | None = None) -> None:
        """Handle one message for `execution_id`. Raises only UnavailableError (Postgres or
        the broker cannot take the change now: the message should be retried later)."""
        row = self._recorder.claim(execution_id)
        if row is None:
            log.warning("message for unknown execution", extra={"execution_id": str(execution_id)})
            return
        if row.claimed_attempt is not None:
            self._attempt(row, row.claimed_attempt, traceparent)
        elif row.status == "running":
            self._resume(row, traceparent)
        else:
            # Terminal, or claimed a moment ago by another worker holding a duplicate message.
            log.info(
                "message ignored",
                extra={"execution_id": str(row.id), "job_id": row.job_id, "status": row.status},
            )

    def _attempt(self, row: ClaimRow, attempt: int, traceparent: str | None) -> None:
        started = time.monotonic()
        try:
            job = self._job(row.job_snapshot)
        except ValidationError as exc:
            invalid = PermanentDispatchError(f"invalid job snapshot: {exc}")
            self._finish(row, None, attempt, started, invalid, traceparent)
            return
        delivery = Delivery(
            execution_id=row.id,
            job=job,
            attempt=attempt,
            scheduled_at=row.scheduled_at,
            payload=row.payload,
            timeout=job.timeout,
            traceparent=traceparent,
        )
        decision = self._gate.enter(row.id, job, delivery.cancelled) if self._gate else Admit()
        if not isinstance(decision, Admit):
            self._hold_back(row, attempt, decision, traceparent)
            return
        try:
            if self._control is None:
                result = self._dispatch(job, delivery, None)
            else:
                with self._control.guard(delivery) as guard:
                    result = verdict(guard, self._dispatch(job, delivery, guard))
        finally:
            decision.release()
        self._finish(row, job, attempt, started, result, traceparent)

    def _dispatch(
        self, job: Job, delivery: Delivery, guard: AttemptGuard | None
    ) -> Outcome | DispatchError:
        if guard is not None and guard.stopped is not None:
            # Cancelled while waiting for its slot or rate-limit turn: send nothing.
            return AttemptCancelledError("execution cancelled before dispatch")
        try:
            with observe.dispatch_span(delivery) as traced:
                return self._dispatchers.get(job.target_kind).dispatch(traced)
        except DispatchError as exc:
            return exc
        except Exception as exc:
            # A dispatcher broke its contract; fail the execution rather than loop on a bug.
            log.exception(
                "dispatcher raised an unexpected error",
                extra={"execution_id": str(delivery.execution_id), "job_id": job.id},
            )
            error = PermanentDispatchError(f"{type(exc).__name__}: {exc}")
            error.__cause__ = exc
            return error

    def _hold_back(
        self, row: ClaimRow, attempt: int, decision: Skip | Defer, traceparent: str | None
    ) -> None:
        """Undo the claim without dispatching: skip the execution for good (`forbid`), or put
        it back on the queue to try again later (slots full, rate limit)."""
        if isinstance(decision, Skip):
            status, reason = "skipped", decision.reason
        else:
            status, reason = ("queued" if attempt == 1 else "retrying"), None
        with self._db.transaction() as conn:
            moved = executions.unclaim(conn, row.id, attempt, status, reason)
        log.info(
            "execution skipped" if status == "skipped" else "execution deferred",
            extra={"execution_id": str(row.id), "job_id": row.job_id, "reason": decision.reason},
        )
        if moved and status == "skipped":
            observe.execution_finished(row, status, self._clock())
        if moved and isinstance(decision, Defer):
            self._enqueuer.enqueue(row.id, delay=decision.delay, options=_options(traceparent))

    def _finish(
        self,
        row: ClaimRow,
        job: Job | None,
        attempt: int,
        started: float,
        result: Outcome | DispatchError,
        traceparent: str | None,
    ) -> None:
        now = self._clock()
        duration_ms = (time.monotonic() - started) * 1000
        delay: timedelta | None = None
        if isinstance(result, Outcome):
            end = AttemptEnd(
                execution_id=row.id,
                attempt=attempt,
                finished_at=now,
                duration_ms=duration_ms,
                outcome="succeeded",
                status="succeeded",
                status_code=result.status_code,
                response=result.response,
                result=result.result,
            )
        else:
            error = result
            retry = job is not None and error.retryable and should_retry(job.retry_policy, attempt)
            if retry and job is not None:
                delay = backoff(job.retry_policy, attempt, error.retry_after)
            end = AttemptEnd(
                execution_id=row.id,
                attempt=attempt,
                finished_at=now,
                duration_ms=duration_ms,
                outcome=_outcome_of(error),
                status="retrying" if delay is not None else _final_status(error),
                status_code=error.status_code,
                error_class=_error_class(error),
                error_message=str(error),
                response=error.response,
                next_attempt_at=None if delay is None else now + delay,
            )
        status = self._recorder.finish(end)
        observe.attempt_finished(row, end, status, now)
        log.info(
            "attempt finished",
            extra={
                "execution_id": str(row.id),
                "job_id": row.job_id,
                "attempt": attempt,
                "outcome": end.outcome,
                "status": status,
                "status_code": end.status_code,
                "error": end.error_message,
                "duration_ms": round(duration_ms, 1),
            },
        )
        if status == "retrying" and delay is not None:
            self._enqueuer.enqueue(row.id, delay=delay, options=_options(traceparent))

    def _resume(self, row: ClaimRow, traceparent: str | None) -> None:
        """A message for a running execution: wait out the current attempt's lease, then take
        over from the worker that lost it."""
        try:
            job: Job | None = self._job(row.job_snapshot)
        except ValidationError:
            job = None
        timeout = job.timeout if job is not None else timedelta(0)
        now = self._clock()
        if row.attempt_open and row.attempt_started_at is not None:
            expires = row.attempt_started_at + timeout + LEASE_GRACE
            if expires > now:
                self._enqueuer.enqueue(row.id, delay=expires - now, options=_options(traceparent))
                return
        give_up = job is None or not should_retry(job.retry_policy, row.attempts)
        with self._db.transaction() as conn:
            attempt = executions.take_over(conn, row.id, row.attempts, now, give_up=give_up)
        log.warning(
            "worker lost during attempt",
            extra={
                "execution_id": str(row.id),
                "job_id": row.job_id,
                "attempt": row.attempts,
                "next_attempt": attempt if not give_up else None,
            },
        )
        if attempt is not None and not give_up:
            self._attempt(row, attempt, traceparent)

    def _job(self, snapshot: str) -> Job:
        with self._jobs_lock:
            job = self._jobs.get(snapshot)
            if job is not None:
                self._jobs.move_to_end(snapshot)
                return job
        job = Job.model_validate_json(snapshot)
        with self._jobs_lock:
            self._jobs[snapshot] = job
            if len(self._jobs) > SNAPSHOT_CACHE_SIZE:
                self._jobs.popitem(last=False)
        return job


def _outcome_of(error: DispatchError) -> str:
    if isinstance(error, DispatchTimeoutError | AttemptCancelledError):
        return error.outcome
    return "retryable" if error.retryable else "failed"


def _final_status(error: DispatchError) -> str:
    """The execution's state when its last attempt failed this way. Timeouts are retried like
    any transient failure, so running out of attempts on one is `failed` (the attempts say
    `timed_out`); only a cancel ends the execution differently."""
    if isinstance(error, AttemptCancelledError):
        return error.outcome
    return "failed"


def _error_class(error: DispatchError) -> str:
    """The most specific name: the library error a dispatcher mapped, else ours."""
    cause = error.__cause__
    return type(cause).__name__ if cause is not None else type(error).__name__


def _options(traceparent: str | None) -> dict[str, str] | None:
    return {"traceparent": traceparent} if traceparent else None
