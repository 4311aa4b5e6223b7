"""The one exception tree of Chronos.

    ChronosError
    ├── ConfigError          a setting from the environment is missing or invalid
    ├── JobDefinitionError   a job or jobs file does not validate (carries every problem)
    ├── NotFoundError        a job or execution id that does not exist
    ├── ConflictError        the request contradicts current state (e.g. job paused)
    ├── UnavailableError     Postgres, Redis or the broker cannot take the request now
    └── DispatchError        one attempt to deliver an execution failed
        ├── RetryableDispatchError   transient: network, timeout, 5xx, 429, broker down
        └── PermanentDispatchError   retrying cannot help: 4xx, bad target config

Every error carries enough context (job, field, value) for a one-line message a user can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


class ChronosError(Exception):
    """Base of every error Chronos raises on purpose."""


class ConfigError(ChronosError):
    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


@dataclass(frozen=True)
class Problem:
    """One validation problem: where it is (job id and field path) and what is wrong."""

    location: str
    message: str
    job_id: str | None = None

    def __str__(self) -> str:
        prefix = f"job {self.job_id!r}: " if self.job_id else ""
        where = f"{self.location}: " if self.location else ""
        return f"{prefix}{where}{self.message}"


class JobDefinitionError(ChronosError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class NotFoundError(ChronosError):
    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind = kind
        self.ident = ident


class ConflictError(ChronosError):
    pass


class UnavailableError(ChronosError):
    pass


class DispatchError(ChronosError):
    """One failed attempt. `status_code` and `response` are kept on the attempt row."""

    retryable = False
    outcome = "failed"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        response: str | None = None,
        retry_after: timedelta | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = response
        self.retry_after = retry_after


class RetryableDispatchError(DispatchError):
    retryable = True


class DispatchTimeoutError(RetryableDispatchError):
    outcome = "timed_out"


class PermanentDispatchError(DispatchError):
    retryable = False
