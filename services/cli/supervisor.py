"""Run `chronos` subcommands as child processes and stop them together, in order."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType

import click

STOP_TIMEOUT = timedelta(seconds=20)
POLL_INTERVAL = timedelta(milliseconds=200)
_PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def _die_with_parent() -> None:
    """Linux: a child gets SIGTERM if `chronos dev` dies without stopping it (kill -9)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.children: list[Child] = []
        self.stopping = threading.Event()

    def spawn(self, name: str, *args: str) -> Child:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args],
            env=self.env,
            # Own session: a terminal Ctrl-C reaches only us, and we stop children in order.
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        child = Child(name, process)
        self.children.append(child)
        return child

    def handle_signals(self) -> None:
        def request_stop(signum: int, frame: FrameType | None) -> None:
            self.stopping.set()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

    def exited(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def wait(self) -> Child | None:
        """Block until a stop is requested (None) or a child exits (that child)."""
        while not self.stopping.wait(POLL_INTERVAL.total_seconds()):
            child = self.exited()
            if child is not None:
                return child
        return None

    def stop_all(self) -> None:
        """Stop children one at a time, newest first (producers before the workers that drain
        what they produced, the target last); SIGKILL one that outlives the timeout."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.terminate()
            try:
                child.process.wait(STOP_TIMEOUT.total_seconds())
            except subprocess.TimeoutExpired:
                click.echo(f"{child.name} did not stop in time; killing it", err=True)
                child.process.kill()
                child.process.wait()
