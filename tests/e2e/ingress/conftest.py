"""`chronos ingress` as a user runs it, plus a private Postgres cluster a test may stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ingress_process import (
    CHRONOS,
    START_TIMEOUT_S,
    Ingress,
    PrivatePostgres,
    StartIngress,
    free_port,
)
from worker_fixtures import target, worker_processes

__all__ = ["target", "worker_processes"]


@pytest.fixture
def start_ingress(settings_env: dict[str, str], tmp_path: Path) -> Iterator[StartIngress]:
    """Start `chronos ingress` (its own process group) and wait until /_health answers."""
    started: list[Ingress] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Ingress:
        port = free_port()
        log = tmp_path / f"ingress-{len(started)}.log"
        process = subprocess.Popen(
            [str(CHRONOS), "ingress", "--host", "127.0.0.1", "--port", str(port), *args],
            env={**settings_env, **(env or {})},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        ingress = Ingress(process, port, log)
        started.append(ingress)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise AssertionError(f"chronos ingress exited: {ingress.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{ingress.url}/_health", timeout=1).status_code == 200:
                    return ingress
            if time.monotonic() > deadline:
                raise AssertionError(f"chronos ingress did not answer: {ingress.output()}")
            time.sleep(0.1)

    yield start
    for ingress in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ingress.process.pid, signal.SIGTERM)
    for ingress in started:
        try:
            ingress.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(ingress.process.pid, signal.SIGKILL)
            ingress.process.wait()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    import shutil
    import tempfile

    # Not tmp_path: the postgres user must be able to reach the folder.
    root = Path(tempfile.mkdtemp(prefix="chronos-pg-"))
    root.chmod(0o755)
    server = PrivatePostgres(root)
    server.start()
    yield server
    with contextlib.suppress(subprocess.CalledProcessError):
        server.stop()
    shutil.rmtree(root, ignore_errors=True)
