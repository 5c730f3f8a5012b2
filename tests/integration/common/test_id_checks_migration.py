"""Migration 0031: the id checks of devices, tenants and artifacts without
bounded repetition (cheap on every UPDATE) accept exactly what the checks they
replace accepted, on a database migrated before and after it."""

from __future__ import annotations

import asyncpg
import pytest

from xdp47_common.adapters.migrations import load_migrations, migrate

pytestmark = pytest.mark.integration

CHEAP_CHECKS = 31

# Each table's check before the migration, and values at and across its edges.
OLD_RULES = {
    "devices": "^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$",
    "tenants": "^[a-z0-9][a-z0-9-]{0,62}$",
    "artifacts": "^[0-9a-f]{64}$",
}
EDGES = [
    "",
    "a",
    "A",
    "0",
    "-a",
    "_a",
    "a-",
    "a_",
    "a-b_c",
    "Ab9",
    "a b",
    "a\n",
    "a.b",
    "é",
    "aé",
    "a" * 63,
    "a" * 64,
    "a" * 65,
    "a" * 127,
    "a" * 128,
    "a" * 129,
    "f" * 64,
    "F" * 64,
    "0" * 63,
    "0" * 65,
    "0" * 63 + "g",
    "Z" + "-" * 127,
    "Z" + "-" * 128,
]


async def _checks(conn: asyncpg.Connection) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT conrelid::regclass::text AS t, pg_get_constraintdef(oid) AS d "
        "FROM pg_constraint WHERE conname = ANY($1::text[])",
        ["devices_id_check", "tenants_id_check", "artifacts_sha256_check"],
    )
    return {r["t"]: r["d"].removeprefix("CHECK ") for r in rows}


async def _accepts(conn: asyncpg.Connection, table: str, check: str) -> list[bool]:
    column = "sha256" if table == "artifacts" else "id"
    expression = check.replace(column, "v.x")
    rows = await conn.fetch(
        f"SELECT coalesce({expression}, true) AS ok "  # nosec B608 (the test's own)
        "FROM unnest($1::text[]) WITH ORDINALITY AS v(x, n) ORDER BY n",
        EDGES,
    )
    return [r["ok"] for r in rows]


async def test_the_new_checks_accept_what_the_old_ones_did(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        await migrate(conn, [m for m in load_migrations() if m.version < CHEAP_CHECKS])
        before = await _checks(conn)
        for table, rule in OLD_RULES.items():
            assert rule in before[table]
        assert CHEAP_CHECKS in await migrate(conn)
        after = await _checks(conn)
        for table in OLD_RULES:
            assert "{" not in after[table]
            old = await _accepts(conn, table, before[table])
            assert set(old) == {True, False}  # the edges fall on both sides
            assert await _accepts(conn, table, after[table]) == old, table
        # Still enforced on every write.
        await conn.execute("INSERT INTO tenants (id, name) VALUES ('t-1', 't')")
        await conn.execute("INSERT INTO devices (tenant, id) VALUES ('t-1', 'd_1')")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO devices (tenant, id) VALUES ('t-1', $1)", "d" * 129
            )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("INSERT INTO tenants (id, name) VALUES ('-t', 't')")
    finally:
        await conn.close()
