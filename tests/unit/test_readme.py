"""The README's reference sections match the code they describe, so they cannot drift."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from services.cli.dev import webhook_curl
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
GENERATOR = ROOT / "scripts" / "gen-job-reference"


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_job_reference_is_the_generators_output() -> None:
    generated = subprocess.run(
        [sys.executable, str(GENERATOR)], capture_output=True, text=True, check=True
    ).stdout
    assert "#### WebhookTarget" in generated
    assert generated in README, (
        "README job reference is stale: run scripts/gen-job-reference --write"
    )


def test_configuration_table_lists_every_setting() -> None:
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", _section("Configuration"), re.M))
    variables = {name.upper() for name in Settings.model_fields}
    assert documented == variables


def test_cli_table_lists_every_subcommand() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "services.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    commands = {
        line.split()[0] for line in help_text.split("Commands:", 1)[1].splitlines() if line.strip()
    }
    documented = set(re.findall(r"^\| `chronos ([a-z-]+)", _section("CLI"), re.M))
    assert documented == commands


def test_quickstart_curl_line_is_the_one_chronos_dev_prints() -> None:
    assert webhook_curl(Settings(port=3000, webhook_secret=""), "order-created") in _section(
        "Try it"
    )


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second() -> None:
    first_block = re.search(r"^```sh\n(.*?)^```", README, re.M | re.S)
    assert first_block, "README has no sh block"
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["scripts/demo", "scripts/test"]
    # The pitch is the only thing before the two commands.
    assert "\n## " not in README[: first_block.start()]
    # The demo is the `chronos dev` run that tests/e2e/test_dev.py proves.
    assert "chronos dev --jobs examples/jobs.yaml --echo" in (ROOT / "scripts/demo").read_text()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == "exec scripts/test"
