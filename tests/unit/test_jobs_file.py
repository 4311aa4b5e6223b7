from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from shared.errors import JobDefinitionError
from shared.jobs import Job
from shared.jobsfile import jobs_file_schema, load_jobs_file, parse_jobs

FIXTURES = Path(__file__).parent.parent / "fixtures"


def test_ten_kinds_of_mistake_give_one_line_each() -> None:
    with pytest.raises(JobDefinitionError) as info:
        load_jobs_file(FIXTURES / "ten_mistakes.yaml")
    lines = [str(p) for p in info.value.problems]
    expected = [
        ("bad-cron", "schedule: invalid cron expression"),
        ("bad-tz", "timezone: unknown IANA timezone 'Mars/Olympus'"),
        ("two-targets", "more than one target (webhook, nats)"),
        ("no-target", "no target"),
        ("neg-interval", "retry_policy.initial_interval: invalid duration -5"),
        ("bad-auth", "webhook.auth: unknown auth type 'oauth'"),
        ("bad-duration", "timeout: invalid duration '5 minutes'"),
        ("dup", "duplicate id"),
        ("bad id!", "id: invalid id 'bad id!'"),
        ("unknown-field", "retries: unknown field"),
    ]
    assert len(lines) == len(expected)
    for job_id, fragment in expected:
        assert any(f"job {job_id!r}" in line and fragment in line for line in lines), (
            job_id,
            lines,
        )


def test_valid_file_loads_every_target_kind() -> None:
    jobs = load_jobs_file(FIXTURES / "valid_jobs.yaml")
    assert [j.target_kind for j in jobs] == [
        "webhook",
        "webhook",
        "webhook",
        "kafka",
        "nats",
        "rabbitmq",
        "grpc",
    ]


def _fields_set(model: BaseModel) -> Iterator[str]:
    """`Model.field` for every field given a value other than its default, nested models too."""
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if name in model.model_fields_set and value != info.get_default(call_default_factory=True):
            yield f"{type(model).__name__}.{name}"
        if isinstance(value, BaseModel):
            yield from _fields_set(value)


def test_fixture_sets_every_schema_field() -> None:
    # A field left at its default in the fixture would pass the apply/list round trip even if
    # storing it were broken; this keeps the fixture complete as fields are added.
    definitions = jobs_file_schema()["$defs"]
    every_field = {
        f"{model}.{field}"
        for model, schema in definitions.items()
        for field in schema.get("properties", {})
    }
    covered = {f for job in load_jobs_file(FIXTURES / "valid_jobs.yaml") for f in _fields_set(job)}
    assert every_field - covered == set()


def test_spec_round_trips() -> None:
    for job in load_jobs_file(FIXTURES / "valid_jobs.yaml"):
        assert Job.model_validate(job.spec()) == job


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "top-level 'jobs:'"),
        ({"jobs": {"id": "x"}}, "must be a list"),
        ({"jobs": ["text"]}, "must be a mapping"),
        ({"jobs": [], "extra": 1}, "unknown top-level field"),
    ],
)
def test_bad_document_shapes(document: object, message: str) -> None:
    with pytest.raises(JobDefinitionError, match=message):
        parse_jobs(document)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"webhook": {"url": "ftp://x"}}, "url must be http"),
        ({"grpc": {"address": "a:1", "method": "nope"}}, "package.Service/Method"),
        ({"webhook": {"url": "http://x", "headers": {"A": "${vault:x}"}}}, "bad secret reference"),
        (
            {
                "webhook": {"url": "http://x"},
                "retry_policy": {"initial_interval": "1m", "max_interval": "1s"},
            },
            "max_interval must not be shorter",
        ),
        ({"webhook": {"url": "http://x"}, "trigger": {"signature": "github"}}, "needs a secret"),
        ({"webhook": {"url": "http://x"}, "timeout": "0s"}, "greater than zero"),
    ],
)
def test_field_rules(fields: dict[str, object], message: str) -> None:
    with pytest.raises(JobDefinitionError, match=message):
        parse_jobs({"jobs": [{"id": "j", **fields}]})


def test_schema_describes_jobs() -> None:
    schema = jobs_file_schema()
    job = schema["$defs"]["Job"]
    assert {"id", "schedule", "webhook", "kafka", "retry_policy"} <= set(job["properties"])
    assert job["additionalProperties"] is False
