"""Migration 0018 on a database whose policies repeat names: the oldest of each
name keeps it, later ones are renamed `<name> (<id>)`, and the unique index
then refuses a repeat within a tenant (not across tenants)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from xdp47_common.adapters.migrations import load_migrations, migrate

pytestmark = pytest.mark.integration

UNIQUE_NAMES = 18


async def test_repeated_names_are_renamed_then_refused(empty_db: str) -> None:
    before = [m for m in load_migrations() if m.version < UNIQUE_NAMES]
    conn = await asyncpg.connect(empty_db)
    try:
        await migrate(conn, before)
        await conn.execute(
            "INSERT INTO tenants (id, name) VALUES ('a', 'a'), ('b', 'b')"
        )
        start = datetime(2026, 1, 1, tzinfo=UTC)
        ids = [uuid.uuid4() for _ in range(4)]
        rows = [
            (ids[0], "a", "careful", start),
            (ids[1], "a", "careful", start + timedelta(minutes=1)),
            (ids[2], "a", "careful", start + timedelta(minutes=2)),
            (ids[3], "b", "careful", start),
        ]
        await conn.executemany(
            "INSERT INTO policies (id, tenant, name, created_at)"
            " VALUES ($1, $2, $3, $4)",
            rows,
        )
        assert UNIQUE_NAMES in await migrate(conn)
        rows_after = await conn.fetch("SELECT id, name FROM policies")
        names = {r["id"]: r["name"] for r in rows_after}
        assert names == {
            ids[0]: "careful",
            ids[1]: f"careful ({ids[1]})",
            ids[2]: f"careful ({ids[2]})",
            ids[3]: "careful",
        }
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO policies (id, tenant, name) VALUES ($1, 'a', 'careful')",
                uuid.uuid4(),
            )
    finally:
        await conn.close()
