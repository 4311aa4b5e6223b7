"""Apply the ordered SQL files in `migrations/`, once each, safely from concurrent processes."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from shared.db import Connection, connect
from shared.errors import ChronosError

log = logging.getLogger(__name__)

# Any fixed 64-bit number; every `chronos migrate` serialises on it.
_ADVISORY_LOCK_ID = 0x6368726F6E6F73

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text PRIMARY KEY,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def migrations_dir() -> Path:
    """`migrations/` at the source root, or the copy packed into an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "migrations", here / "migrations_sql"):
        if candidate.is_dir():
            return candidate
    raise ChronosError(f"migrations folder not found next to {here}")


def discover(folder: Path | None = None) -> list[Migration]:
    folder = folder or migrations_dir()
    return [Migration(p.stem, p) for p in sorted(folder.glob("*.sql"))]


def migrate(database_url: str, folder: Path | None = None) -> list[str]:
    """Apply pending migrations; return the versions applied (empty when up to date)."""
    applied_now: list[str] = []
    with connect(database_url, autocommit=True) as conn:
        # Session-level lock: a second process waits here, then finds nothing left to do.
        conn.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_ID,))
        try:
            conn.execute(_CREATE_LEDGER)
            done = _applied(conn)
            for migration in discover(folder):
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise ChronosError(
                            f"migration {migration.version} was edited after it was applied; "
                            "add a new migration instead"
                        )
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                        (migration.version, migration.checksum),
                    )
                log.info("applied migration", extra={"version": migration.version})
                applied_now.append(migration.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_ID,))
    return applied_now


def _applied(conn: Connection) -> dict[str, str]:
    rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {row["version"]: row["checksum"] for row in rows}
