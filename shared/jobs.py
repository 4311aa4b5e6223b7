"""The job definition: a validated model whose JSON field names are the ones users write.

A job has at most one schedule, exactly one target block (`webhook`, `kafka`, `nats`, `rabbitmq`
or `grpc`), and the policies that govern its executions. Secret references such as
`${env:NAME}` stay unresolved here; dispatchers resolve them at dispatch time.
"""

from __future__ import annotations

import re
import string
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
# Placeholders a Kafka key template may use; dispatchers fill them per execution.
KEY_FIELDS = ("job_id", "execution_id")


def check_template(template: str, fields: tuple[str, ...]) -> None:
    """Reject a `{...}` template naming anything but `fields` (or malformed braces)."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"bad template {template!r}: {exc}") from None
    unknown = [name for name in names if name not in fields]
    if unknown:
        allowed = ", ".join(f"{{{name}}}" for name in fields)
        raise ValueError(f"unknown placeholder {{{unknown[0]}}} in {template!r}: use {allowed}")


class _Model(BaseModel):
    # Field docstrings become descriptions in the JSON Schema, the README reference and editors.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class BasicAuth(_Model):
    type: Literal["basic"]
    username: SecretRef
    """User name (may be a secret reference)."""
    password: SecretRef
    """Password (may be a secret reference)."""


class BearerAuth(_Model):
    type: Literal["bearer"]
    token: SecretRef
    """Sent as `Authorization: Bearer <token>`."""


class ApiKeyAuth(_Model):
    type: Literal["api_key"]
    api_key: SecretRef
    """The key, sent in `header`."""
    header: str = Field(default="X-API-Key", min_length=1)
    """Header that carries the key."""


Auth = Annotated[BasicAuth | BearerAuth | ApiKeyAuth, Field(discriminator="type")]


class WebhookTarget(_Model):
    url: AnyUrl
    """http:// or https:// address to call."""
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    """HTTP method."""
    headers: dict[str, SecretRef] = Field(default_factory=dict)
    """Extra request headers; values may be secret references."""
    body: str | None = None
    """Fixed request body; when unset, the execution's payload is sent as JSON."""
    auth: Auth | None = None
    """Credentials: `type` is `basic`, `bearer` or `api_key`."""
    success_codes: list[Annotated[int, Field(ge=100, le=599)]] = Field(default_factory=list)
    """Status codes that count as success; empty means any 2xx."""
    follow_redirects: bool = False
    """Follow 3xx redirects instead of treating them as the answer."""

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
    """Bootstrap servers, `host:port`."""
    topic: str = Field(min_length=1)
    """Topic the payload is produced to."""
    key: str | None = None
    """Message key template (`{job_id}`, `{execution_id}`); default the job id, for per-job order."""
    partition: int | None = Field(default=None, ge=0)
    """Fixed partition; unset lets the key decide."""
    acks: Literal["all", "1", "0"] | None = None
    """Acknowledgement that counts as delivered; default `KAFKA_ACKS` (`all`)."""
    compression: Literal["gzip", "snappy", "lz4", "zstd"] | None = None
    """Batch compression codec."""
    auto_create_topic: bool | None = None
    """Let the broker create a missing topic; default `KAFKA_AUTO_CREATE_TOPICS` (false)."""
    timeout: Duration | None = None
    """Wait for the ack; default `KAFKA_TIMEOUT`, never past the job's timeout."""
    sasl_username: SecretRef | None = None
    """SASL PLAIN user name (may be a secret reference)."""
    sasl_password: SecretRef | None = None
    """SASL PLAIN password (may be a secret reference)."""

    @field_validator("key")
    @classmethod
    def _key_template(cls, value: str | None) -> str | None:
        if value is not None:
            check_template(value, KEY_FIELDS)
        return value

    @field_validator("acks", mode="before")
    @classmethod
    def _acks_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class NatsTarget(_Model):
    url: str = Field(min_length=1)
    """Server address, `nats://host:4222`."""
    subject: str = Field(min_length=1)
    """Subject the payload is published to."""
    mode: Literal["publish", "request", "jetstream"] = "publish"
    """`publish` (fire and forget), `request` (wait for a reply) or `jetstream` (wait for the stream's ack).
    """
    timeout: Duration | None = None
    """Wait for the flush, reply or ack; default `NATS_TIMEOUT`, never past the job's timeout."""
    user: SecretRef | None = None
    """User name (may be a secret reference)."""
    password: SecretRef | None = None
    """Password (may be a secret reference)."""
    token: SecretRef | None = None
    """Auth token (may be a secret reference)."""


class RabbitMQTarget(_Model):
    url: SecretRef
    """`amqp://user:password@host:5672/vhost` (may be a secret reference)."""
    exchange: str = ""
    """Exchange; empty is the default exchange."""
    routing_key: str = ""
    """Routing key (the queue name on the default exchange)."""
    persistent: bool = True
    """Mark messages persistent (delivery mode 2)."""
    mandatory: bool = False
    """Fail when no queue is bound to take the message."""
    confirm: bool | None = None
    """Wait for the publisher confirm; default `RABBITMQ_CONFIRM` (true)."""
    timeout: Duration | None = None
    """Longest wait to connect or while the broker blocks publishers; default `RABBITMQ_TIMEOUT`."""


class GrpcTarget(_Model):
    address: str = Field(min_length=1)
    """`host:port` of the server."""
    method: str
    """Full method name, `package.Service/Method`."""
    metadata: dict[str, SecretRef] = Field(default_factory=dict)
    """Call metadata; values may be secret references."""
    tls: bool = False
    """Call over TLS with the system's root certificates."""
    encoding: Literal["json", "raw"] = "json"
    """How the payload is sent: JSON bytes, or a raw string as bytes."""

    @field_validator("method")
    @classmethod
    def _method_shape(cls, value: str) -> str:
        if not _GRPC_METHOD.match(value):
            raise ValueError(f"method must look like 'package.Service/Method', got {value!r}")
        return value


class RetryPolicy(_Model):
    max_attempts: int = Field(default=3, ge=1, le=100)
    """Attempts in total, the first included."""
    initial_interval: Duration = timedelta(seconds=1)
    """Wait before the first retry."""
    max_interval: Duration = timedelta(minutes=5)
    """Longest wait between attempts."""
    multiplier: float = Field(default=2.0, ge=1.0, le=100.0)
    """Each wait is the previous one times this; a longer `Retry-After` wins."""

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
    """Accept `POST /webhook` for this job."""
    secret: SecretRef | None = None
    """Secret for checking this job's webhook calls (required with `signature`)."""
    signature: Literal["none", "github", "standard_webhooks"] = "none"
    """Check the body's signature: GitHub (`X-Hub-Signature-256`) or Standard Webhooks."""

    @model_validator(mode="after")
    def _secret_for_signature(self) -> TriggerConfig:
        if self.signature != "none" and not self.secret:
            raise ValueError(f"signature {self.signature!r} needs a secret")
        return self


class RateLimit(_Model):
    per_second: float = Field(gt=0, le=100_000)
    """Most dispatches per second for this job, across all workers."""


class Job(_Model):
    id: str = Field(
        pattern=JOB_ID_PATTERN, description="Unique id: letters, digits, '.', '_', '-'."
    )
    name: str | None = None
    """Display name."""
    description: str | None = None
    """Free text."""
    schedule: str | None = Field(
        default=None, description="Cron: 5 fields, or 6 with seconds first."
    )
    timezone: str | None = Field(default=None, description="IANA zone; default CRON_TIMEZONE.")
    enabled: bool = True
    """A disabled job is not scheduled."""
    payload: JsonValue = None
    """Default payload; a webhook's or manual trigger's payload replaces it."""
    webhook: WebhookTarget | None = None
    kafka: KafkaTarget | None = None
    nats: NatsTarget | None = None
    rabbitmq: RabbitMQTarget | None = None
    grpc: GrpcTarget | None = None
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy)
    """When and how often failed attempts are retried."""
    timeout: Duration = timedelta(seconds=30)
    """Longest one attempt may take."""
    concurrency_policy: Literal["allow", "forbid", "replace"] = "allow"
    """When an execution of this job is still running: `allow` another, `forbid` (skip the new one) or `replace` (cancel the old one).
    """
    max_concurrency: int | None = Field(default=None, ge=1)
    """With `allow`: most executions running at once."""
    misfire_policy: Literal["skip", "run_once", "run_all"] = "skip"
    """Fires missed while no ticker ran: `skip`, `run_once` (the latest) or `run_all`."""
    starting_deadline: Duration | None = None
    """Missed fires older than this are dropped whatever the policy."""
    trigger: TriggerConfig = Field(default_factory=TriggerConfig)
    """How the job may be started over HTTP."""
    rate_limit: RateLimit | None = None
    """Cap on dispatches per second."""

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
