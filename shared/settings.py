"""One typed settings object, read from the environment once in each process's `main()`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.durations import Duration
from shared.errors import ConfigError

_NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class Settings(BaseSettings):
    """Every variable Chronos reads. Defaults follow the source PRD where it names them."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    database_url: str = "postgresql://postgres@127.0.0.1:5432/chronos"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Dramatiq broker: redis:// or amqp://. Empty means "the same Redis as REDIS_URL".
    broker_url: str = ""
    port: int = Field(default=3000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_format: Literal["json", "console"] = "json"
    webhook_secret: SecretStr = SecretStr("")
    api_token: SecretStr = SecretStr("")
    cron_timezone: str = "UTC"
    run_retention_days: int = Field(default=180, ge=1)
    dedupe_window_hours: int = Field(default=48, ge=1)
    otlp_endpoint: str = ""
    sentry_dsn: SecretStr = SecretStr("")
    chronos_namespace: str = "chronos"
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    # Leader lock of the ticker: a dead leader is replaced within about this long.
    ticker_lock_ttl: Duration = timedelta(seconds=5)
    # Redis broker: a worker silent for this long is dead and its unacknowledged messages
    # go back to the queue (RabbitMQ does this when the connection drops).
    worker_heartbeat_timeout: Duration = timedelta(seconds=60)
    # Defaults of the broker targets; a job's own block overrides each. A wait for an ack or
    # reply never outlasts the job's timeout.
    kafka_acks: Literal["all", "1", "0"] = "all"
    # Off so that a typo in a topic name fails the attempt instead of creating a topic.
    kafka_auto_create_topics: bool = False
    kafka_timeout: Duration = timedelta(seconds=10)
    nats_timeout: Duration = timedelta(seconds=10)
    rabbitmq_confirm: bool = True
    rabbitmq_timeout: Duration = timedelta(seconds=10)

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// or postgres://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "amqp://", "amqps://")):
            raise ValueError("must start with redis://, rediss://, amqp:// or amqps://")
        return value

    @field_validator("cron_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA timezone {value!r}") from None
        return value

    @field_validator("ticker_lock_ttl")
    @classmethod
    def _lock_ttl(cls, value: timedelta) -> timedelta:
        if value < timedelta(milliseconds=500):
            raise ValueError("must be at least 500ms")
        return value

    @field_validator("chronos_namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _NAMESPACE.match(value):
            raise ValueError(
                "must be 1-40 characters of lower-case letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
        return value

    @model_validator(mode="after")
    def _default_broker(self) -> Settings:
        if not self.broker_url:
            object.__setattr__(self, "broker_url", self.redis_url)
        return self

    @property
    def broker_kind(self) -> Literal["redis", "rabbitmq"]:
        return "rabbitmq" if self.broker_url.startswith("amqp") else "redis"

    def key(self, *parts: str) -> str:
        """A Redis key in this deployment's namespace."""
        return ":".join((self.chronos_namespace, *parts))


def load_settings(**overrides: object) -> Settings:
    """Read the environment; a bad value raises ConfigError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        variable = str(first["loc"][0]).upper() if first["loc"] else "settings"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(variable, f"{message} (got {first.get('input')!r})") from None
