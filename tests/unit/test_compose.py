"""The compose file is valid for Compose v1 and the Compose spec, and runs real `chronos` commands."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
INSTALL_HINT = "docker-compose is not installed: apt-get install -y docker-compose"


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def _chronos_services() -> dict[str, Any]:
    return {name: s for name, s in _services().items() if "build" in s}


def _chronos_help(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", *args, "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def _subcommands() -> set[str]:
    commands = _chronos_help().split("Commands:", 1)[1]
    return {line.split()[0] for line in commands.splitlines() if line.strip()}


def test_docker_compose_config_accepts_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail(INSTALL_HINT)
    result = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr


def test_file_matches_the_compose_spec() -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_chronos_command_is_a_real_subcommand_with_real_options() -> None:
    subcommands = _subcommands()
    commands = [s["command"] for s in _chronos_services().values()]
    assert len(commands) >= 4
    for command in commands:
        assert command[0] == "chronos", command
        assert command[1] in subcommands, f"{command}: not one of {sorted(subcommands)}"
        help_text = _chronos_help(command[1])
        for option in (arg for arg in command[2:] if arg.startswith("-")):
            assert re.search(rf"(^|[\s,]){re.escape(option)}\b", help_text), (command, option)


def test_services_start_in_order_and_scale() -> None:
    services = _services()
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("ticker", "ingress", "workers"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert "healthcheck" in services[name], name
    assert services["ticker"]["deploy"]["replicas"] == 2
    # A fixed host port or container name would make `--scale workers=N` fail.
    for name in ("ticker", "workers"):
        assert "ports" not in services[name] and "container_name" not in services[name], name
    profiles = {p for s in services.values() for p in s.get("profiles", [])}
    assert {"rabbitmq", "nats", "kafka", "observability"} <= profiles


def test_dockerfile_copies_only_what_exists_and_runs_as_non_root() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    sources = [
        source
        for line in lines
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")


def test_every_variable_set_on_a_chronos_service_is_a_setting() -> None:
    # Settings ignore unknown variables, so a misspelt one would be dropped without a word.
    known = {name.upper() for name in Settings.model_fields}
    for name, service in _chronos_services().items():
        assert set(service["environment"]) <= known, (name, set(service["environment"]) - known)


def test_one_slim_image_runs_every_chronos_service() -> None:
    services = _chronos_services()
    assert {"migrate", "ticker", "ingress", "workers"} <= set(services)
    assert len({(s["image"], s["build"]) for s in services.values()}) == 1
    stages = [
        line.split()[1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("FROM ")
    ]
    assert stages[-1].endswith("-slim"), stages
