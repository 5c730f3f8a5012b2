"""Schema migrations over numbered ``.sql`` files.

Files are named ``NNNN_description.sql`` and applied in order, each in its own
transaction together with its row in ``schema_migrations``. A session-level advisory
lock serialises concurrent runners (two services starting at once): the second waits,
then finds nothing left to do. An applied file whose checksum changed is an error,
never silently skipped or re-run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg

__all__ = [
    "DatabaseRefused",
    "Migration",
    "MigrationError",
    "applied_versions",
    "load_migrations",
    "migrate",
    "migrate_database",
]

# Any fixed 64-bit key works; this one spells "xdp47mig" in ASCII.
_LOCK_KEY = 0x78647034376D6967
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migrations on disk and in the database disagree."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Read the numbered migration files, in order.

    Args:
        directory: where the files are; the packaged ``migrations`` folder by default.

    Returns:
        The migrations sorted by version.

    Raises:
        MigrationError: a file name does not follow ``NNNN_name.sql`` or a version
            repeats.
    """
    if directory is None:
        files = [
            (p.name, p.read_text(encoding="utf-8"))
            for p in resources.files("xdp47_common.migrations").iterdir()
            if p.name.endswith(".sql")
        ]
    else:
        files = [
            (p.name, p.read_text(encoding="utf-8")) for p in directory.glob("*.sql")
        ]
    out: dict[int, Migration] = {}
    for name, sql in files:
        m = _NAME.match(name)
        if m is None:
            raise MigrationError(f"migration file {name!r} is not NNNN_name.sql")
        version = int(m.group(1))
        if version in out:
            raise MigrationError(f"migration version {version} appears twice")
        out[version] = Migration(version, m.group(2), sql)
    return [out[v] for v in sorted(out)]


async def applied_versions(conn: asyncpg.Connection[Any]) -> dict[int, str]:
    """Return ``{version: checksum}`` of what the database has applied."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    return {r["version"]: r["checksum"] for r in rows}


async def migrate(
    conn: asyncpg.Connection[Any], migrations: list[Migration] | None = None
) -> list[int]:
    """Apply every pending migration; safe to run from several processes at once.

    Args:
        conn: a dedicated connection (the advisory lock is held on its session).
        migrations: what to apply; the packaged files by default.

    Returns:
        The versions this call applied, in order (empty when up to date).

    Raises:
        MigrationError: an applied migration's checksum differs from the file's.
    """
    todo = load_migrations() if migrations is None else migrations
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        done = await applied_versions(conn)
        for m in todo:
            if m.version in done and done[m.version] != m.checksum:
                raise MigrationError(
                    f"migration {m.version:04d}_{m.name} was changed after it was "
                    "applied; add a new migration instead"
                )
        applied: list[int] = []
        for m in todo:
            if m.version in done:
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) "
                    "VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    m.checksum,
                )
            applied.append(m.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


class DatabaseRefused(Exception):
    """PostgreSQL answered but cannot be migrated: ``kind`` is ``missing`` (no
    such database), ``login`` (authentication refused) or ``other``."""

    def __init__(self, kind: str, cause: Exception) -> None:
        super().__init__(str(cause))
        self.kind = kind
        self.cause = cause


async def migrate_database(dsn: str, *, connect_timeout: float) -> list[int]:
    """Connect to ``dsn``, apply pending migrations, close (``xdp47-migrate``).

    Args:
        dsn: PostgreSQL URL.
        connect_timeout: seconds allowed for connecting.

    Returns:
        The versions applied, in order.

    Raises:
        MigrationError: an applied migration's checksum differs from the file's.
        DatabaseRefused: PostgreSQL refused the database, the login or a statement,
            or the URL is malformed.
        OSError: PostgreSQL cannot be reached (``TimeoutError`` included).
    """
    try:
        conn = await asyncpg.connect(dsn, timeout=connect_timeout)
        try:
            return await migrate(conn)
        finally:
            await conn.close()
    except MigrationError:
        raise
    except asyncpg.InvalidCatalogNameError as exc:
        raise DatabaseRefused("missing", exc) from exc
    except asyncpg.InvalidAuthorizationSpecificationError as exc:
        raise DatabaseRefused("login", exc) from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        # InterfaceError covers a malformed DSN (ClientConfigurationError).
        raise DatabaseRefused("other", exc) from exc
