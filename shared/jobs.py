"""The job definition: a validated model whose JSON field names are the ones users write.

A job has at most one schedule, exactly one target block (`webhook`, `kafka`, `nats`, `rabbitmq`
or `grpc`), and the policies that govern its executions. Secret references such as
`${env:NAME}` stay unresolved here; dispatchers resolve them at dispatch time.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AnyUrl,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)

from shared.cron import CronSchedule, validate_timezone
from shared.durations import Duration
from shared.secrets import SecretRef

JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
TARGET_KINDS = ("webhook", "kafka", "nats", "rabbitmq", "grpc")
TargetKind = Literal["webhook", "kafka", "nats", "rabbitmq", "grpc"]
_GRPC_METHOD = re.compile(r"^/?[A-Za-z_][\w.]*/[A-Za-z_]\w*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BasicAuth(_Model):
    type: Literal["basic"]
    username: SecretRef
    password: SecretRef


class BearerAuth(_Model):
    type: Literal["bearer"]
    token: SecretRef


class ApiKeyAuth(_Model):
    type: Literal["api_key"]
    api_key: SecretRef
    header: str = Field(default="X-API-Key", min_length=1)


Auth = Annotated[BasicAuth | BearerAuth | ApiKeyAuth, Field(discriminator="type")]


class WebhookTarget(_Model):
    url: AnyUrl
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, SecretRef] = Field(default_factory=dict)
    body: str | None = None
    auth: Auth | None = None
    success_codes: list[Annotated[int, Field(ge=100, le=599)]] = Field(default_factory=list)
    follow_redirects: bool = False

    @field_validator("url")
    @classmethod
    def _http_only(cls, url: AnyUrl) -> AnyUrl:
        if url.scheme not in ("http", "https"):
            raise ValueError(f"url must be http:// or https://, got {url.scheme}://")
        return url

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class KafkaTarget(_Model):
    brokers: list[str] = Field(min_length=1)
    topic: str = Field(min_length=1)
    key: str | None = None
    partition: int | None = Field(default=None, ge=0)
    acks: Literal["all", "1", "0"] = "all"
    compression: Literal["gzip", "snappy", "lz4", "zstd"] | None = None
    sasl_username: SecretRef | None = None
    sasl_password: SecretRef | None = None

    @field_validator("acks", mode="before")
    @classmethod
    def _acks_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class NatsTarget(_Model):
    url: str = Field(min_length=1)
    subject: str = Field(min_length=1)
    mode: Literal["publish", "request", "jetstream"] = "publish"
    timeout: Duration | None = None
    user: SecretRef | None = None
    password: SecretRef | None = None
    token: SecretRef | None = None


class RabbitMQTarget(_Model):
    url: SecretRef
    exchange: str = ""
    routing_key: str = ""
    persistent: bool = True
    mandatory: bool = False


class GrpcTarget(_Model):
    address: str = Field(min_length=1)
    method: str
    metadata: dict[str, SecretRef] = Field(default_factory=dict)
    tls: bool = False
    encoding: Literal["json", "raw"] = "json"

    @field_validator("method")
    @classmethod
    def _method_shape(cls, value: str) -> str:
        if not _GRPC_METHOD.match(value):
            raise ValueError(f"method must look like 'package.Service/Method', got {value!r}")
        return value


class RetryPolicy(_Model):
    max_attempts: int = Field(default=3, ge=1, le=100)
    initial_interval: Duration = timedelta(seconds=1)
    max_interval: Duration = timedelta(minutes=5)
    multiplier: float = Field(default=2.0, ge=1.0, le=100.0)

    @field_validator("initial_interval", "max_interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be greater than zero")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.max_interval < self.initial_interval:
            raise ValueError("max_interval must not be shorter than initial_interval")
        return self


class TriggerConfig(_Model):
    """How the job may be started over HTTP (`POST /webhook`, `POST /webhooks/{id}`)."""

    webhook_enabled: bool = True
    secret: SecretRef | None = None
    signature: Literal["none", "github", "standard_webhooks"] = "none"

    @model_validator(mode="after")
    def _secret_for_signature(self) -> TriggerConfig:
        if self.signature != "none" and not self.secret:
            raise ValueError(f"signature {self.signature!r} needs a secret")
        return self


class RateLimit(_Model):
    per_second: float = Field(gt=0, le=100_000)


class Job(_Model):
    id: str = Field(
        pattern=JOB_ID_PATTERN, description="Unique id: letters, digits, '.', '_', '-'."
    )
    name: str | None = None
    description: str | None = None
    schedule: str | None = Field(
        default=None, description="Cron: 5 fields, or 6 with seconds first."
    )
    timezone: str | None = Field(default=None, description="IANA zone; default CRON_TIMEZONE.")
    enabled: bool = True
    payload: JsonValue = None
    webhook: WebhookTarget | None = None
    kafka: KafkaTarget | None = None
    nats: NatsTarget | None = None
    rabbitmq: RabbitMQTarget | None = None
    grpc: GrpcTarget | None = None
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout: Duration = timedelta(seconds=30)
    concurrency_policy: Literal["allow", "forbid", "replace"] = "allow"
    max_concurrency: int | None = Field(default=None, ge=1)
    misfire_policy: Literal["skip", "run_once", "run_all"] = "skip"
    starting_deadline: Duration | None = None
    trigger: TriggerConfig = Field(default_factory=TriggerConfig)
    rate_limit: RateLimit | None = None

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            CronSchedule.parse(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            validate_timezone(value)
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout_positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be greater than zero")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> Job:
        present = [kind for kind in TARGET_KINDS if getattr(self, kind) is not None]
        if not present:
            raise ValueError(f"no target: give exactly one of {', '.join(TARGET_KINDS)}")
        if len(present) > 1:
            raise ValueError(f"more than one target ({', '.join(present)}): give exactly one")
        if self.max_concurrency is not None and self.concurrency_policy != "allow":
            raise ValueError("max_concurrency applies only with concurrency_policy 'allow'")
        return self

    @property
    def target_kind(self) -> TargetKind:
        for kind in TARGET_KINDS:
            if getattr(self, kind) is not None:
                return kind  # type: ignore[return-value]
        raise AssertionError("validated job without a target")

    @property
    def target(self) -> WebhookTarget | KafkaTarget | NatsTarget | RabbitMQTarget | GrpcTarget:
        config = getattr(self, self.target_kind)
        assert config is not None
        return config  # type: ignore[no-any-return]

    @property
    def cron(self) -> CronSchedule | None:
        return CronSchedule.parse(self.schedule) if self.schedule else None

    def spec(self) -> dict[str, Any]:
        """The definition as stored and shown: JSON-ready, defaults included."""
        return self.model_dump(mode="json", exclude_none=True)


class JobsFile(_Model):
    jobs: list[Job]
