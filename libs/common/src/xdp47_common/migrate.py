"""``xdp47-migrate``: bring the database schema up to date, then exit.

Run it once before the services start (compose runs it as a one-shot, Helm as a
pre-install/pre-upgrade hook). It is safe to run concurrently and repeatedly.
"""

from __future__ import annotations

import asyncio
import os
import sys

__all__ = ["main", "run"]


async def run(dsn: str) -> list[int]:
    """Apply pending migrations to the database at ``dsn``."""
    import asyncpg

    from xdp47_common.adapters.migrations import migrate

    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


def main() -> None:
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        sys.exit("xdp47-migrate needs asyncpg: install xdp47-common[pg]")
    from xdp47_common.adapters.migrations import MigrationError

    dsn = os.environ.get("XDP47_DB_URL", "postgresql://postgres@127.0.0.1:5432/xdp47")
    try:
        applied = asyncio.run(run(dsn))
    except MigrationError as exc:
        sys.exit(f"xdp47-migrate: {exc}")
    except OSError as exc:
        sys.exit(f"xdp47-migrate: cannot reach PostgreSQL at XDP47_DB_URL: {exc}")
    names = ", ".join(f"{v:04d}" for v in applied) or "none (up to date)"
    sys.stdout.write(f"xdp47-migrate: applied {names}\n")
