"""`chronos worker`: run worker processes (the Dramatiq CLI with our entrypoint)."""

from __future__ import annotations

import os
import sys

import click

from shared.settings import load_settings

# Imported by Dramatiq in each child process; named, not imported, to keep `chronos` quick.
ENTRYPOINT = "services.workers.entrypoint:setup"
# Dramatiq's CLI behind Chronos's log format (see launcher.py).
LAUNCHER = "services.workers.launcher"


@click.command()
@click.option(
    "--processes",
    "-p",
    type=click.IntRange(1, 256),
    default=os.cpu_count() or 1,
    show_default="CPU count",
    help="Worker processes.",
)
@click.option(
    "--threads",
    "-t",
    type=click.IntRange(1, 1024),
    default=8,
    show_default=True,
    help="Threads per process (each runs one attempt at a time).",
)
@click.option(
    "--queues",
    "-Q",
    multiple=True,
    help="Consume only these queues (repeatable; default: this namespace's executions).",
)
def worker(processes: int, threads: int, queues: tuple[str, ...]) -> None:
    """Deliver executions: take messages, dispatch, record attempts, retry."""
    # Fail here, with the variable named, rather than once per child process.
    load_settings()
    args = [
        sys.executable,
        "-m",
        LAUNCHER,
        ENTRYPOINT,
        "--processes",
        str(processes),
        "--threads",
        str(threads),
    ]
    if queues:
        args += ["--queues", *queues]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, args)
