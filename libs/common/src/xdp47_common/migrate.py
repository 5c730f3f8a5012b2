"""``xdp47-migrate``: bring the database schema up to date, then exit.

Run it once before the services start (compose runs it as a one-shot, Helm as a
pre-install/pre-upgrade hook). It is safe to run concurrently and repeatedly.
"""

from __future__ import annotations

import asyncio
import os
import sys

from xdp47_common.cli import EXIT_UNAVAILABLE, command_line, fail, where

__all__ = ["main", "run"]

PROG = "xdp47-migrate"
_DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/xdp47"
CONNECT_TIMEOUT = 10.0


async def run(dsn: str) -> list[int]:
    """Apply pending migrations to the database at ``dsn``."""
    from xdp47_common.adapters.migrations import migrate_database

    return await migrate_database(dsn, connect_timeout=CONNECT_TIMEOUT)


def main() -> None:
    command_line(
        PROG,
        "Bring the database at XDP47_DB_URL up to the current schema, then exit.",
        distribution="xdp47-common",
    )
    try:
        from xdp47_common.adapters.migrations import DatabaseRefused, MigrationError
    except ImportError:
        fail(PROG, "needs asyncpg: install xdp47-common[pg]")

    dsn = os.environ.get("XDP47_DB_URL", _DEFAULT_DSN)
    at = where(dsn, "XDP47_DB_URL")
    try:
        applied = asyncio.run(run(dsn))
    except MigrationError as exc:
        fail(PROG, str(exc))
    except DatabaseRefused as exc:
        if exc.kind == "missing":
            fail(PROG, f"PostgreSQL at {at}: {exc}; create the database first")
        if exc.kind == "login":
            fail(PROG, f"PostgreSQL at {at} refused the login: {exc}")
        fail(PROG, f"PostgreSQL at {at}: {exc}")
    except (OSError, TimeoutError) as exc:
        fail(
            PROG,
            f"cannot reach PostgreSQL at {at}: {exc or type(exc).__name__}",
            EXIT_UNAVAILABLE,
        )
    names = ", ".join(f"{v:04d}" for v in applied) or "none (up to date)"
    sys.stdout.write(f"{PROG}: applied {names}\n")
