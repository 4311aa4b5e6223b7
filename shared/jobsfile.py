"""Load a jobs file (YAML or JSON with a top-level `jobs:` list) and report every problem at once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shared.errors import JobDefinitionError, Problem
from shared.jobs import Job


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("basic", "bearer", "api_key") and text.endswith("auth"):
            continue  # discriminated-union tag: the user wrote `auth.type`, not `auth.bearer`
        else:
            text += f".{part}" if text else str(part)
    return text


def _message(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "union_tag_invalid":
        return f"unknown auth type {error['input'].get('type')!r}: use basic, bearer or api_key"
    if error["type"] == "string_pattern_mismatch" and error["loc"][-1:] == ("id",):
        return (
            f"invalid id {error['input']!r}: use letters, digits, '.', '_' or '-' "
            "(at most 128, starting with a letter or digit)"
        )
    return message


def validate_job(raw: Any, index: int | None = None) -> tuple[Job | None, list[Problem]]:
    """Validate one job definition; never raises for user mistakes."""
    job_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
    prefix = f"jobs[{index}]" if index is not None else ""
    if not isinstance(raw, dict):
        return None, [Problem(prefix, "a job must be a mapping of fields", job_id)]
    try:
        return Job.model_validate(raw), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = _location(tuple(error["loc"]))
            location = ".".join(p for p in (prefix, where) if p)
            problems.append(Problem(location, _message(error), job_id))
        return None, problems


def parse_jobs(document: Any) -> list[Job]:
    """Validate a parsed document; raise JobDefinitionError listing every problem."""
    if not isinstance(document, dict) or "jobs" not in document:
        raise JobDefinitionError([Problem("", "the file must have a top-level 'jobs:' list")])
    unknown = sorted(set(document) - {"jobs"})
    problems = [Problem(key, "unknown top-level field") for key in unknown]
    entries = document["jobs"]
    if not isinstance(entries, list):
        raise JobDefinitionError([Problem("jobs", "must be a list of jobs")])
    jobs: list[Job] = []
    for index, raw in enumerate(entries):
        job, job_problems = validate_job(raw, index)
        problems.extend(job_problems)
        if job is not None:
            jobs.append(job)
    ids = Counter(raw.get("id") for raw in entries if isinstance(raw, dict))
    for job_id, count in ids.items():
        if count > 1 and isinstance(job_id, str):
            problems.append(Problem("id", f"duplicate id (defined {count} times)", job_id))
    if problems:
        raise JobDefinitionError(problems)
    return jobs


def load_jobs_file(path: Path) -> list[Job]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise JobDefinitionError([Problem(str(path), f"cannot read: {exc.strerror}")]) from exc
    try:
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise JobDefinitionError([Problem(str(path), f"not valid YAML/JSON: {exc}")]) from exc
    return parse_jobs(document)


def jobs_file_schema() -> dict[str, Any]:
    """The JSON Schema of a jobs file, for editors and CI linting of job definitions."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Chronos jobs file",
        "type": "object",
        "required": ["jobs"],
        "additionalProperties": False,
        "properties": {"jobs": {"type": "array", "items": {"$ref": "#/$defs/Job"}}},
    }
    job_schema = Job.model_json_schema(ref_template="#/$defs/{model}")
    defs = job_schema.pop("$defs", {})
    defs["Job"] = job_schema
    schema["$defs"] = defs
    return schema
