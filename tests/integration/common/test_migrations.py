"""The migration runner against the real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from xdp47_common.adapters.migrations import (
    Migration,
    MigrationError,
    applied_versions,
    load_migrations,
    migrate,
)

pytestmark = pytest.mark.integration


async def test_second_run_applies_nothing(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        first = await migrate(conn)
        second = await migrate(conn)
    finally:
        await conn.close()
    assert first == [m.version for m in load_migrations()]
    assert second == []


async def test_concurrent_runners_apply_each_file_once(empty_db: str) -> None:
    """Five processes starting at once: one applies, the others find nothing to do."""
    conns = [await asyncpg.connect(empty_db) for _ in range(5)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        versions = await applied_versions(conns[0])
    finally:
        for c in conns:
            await c.close()
    applied = sorted(v for r in results for v in r)
    assert applied == [m.version for m in load_migrations()]
    assert sorted(versions) == applied


async def test_changed_file_is_refused(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        await migrate(conn, [Migration(1, "one", "CREATE TABLE t1 (x int);")])
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, [Migration(1, "one", "CREATE TABLE t1 (y int);")])
    finally:
        await conn.close()


async def test_failing_file_leaves_nothing_half_applied(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    bad = Migration(2, "bad", "CREATE TABLE t2 (x int); SELECT no_such_function();")
    try:
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await migrate(conn, [Migration(1, "one", "CREATE TABLE t1 (x int);"), bad])
        assert await applied_versions(conn) == {
            1: Migration(1, "one", "CREATE TABLE t1 (x int);").checksum
        }
        assert await conn.fetchval("SELECT to_regclass('t2')") is None
    finally:
        await conn.close()


def test_bad_file_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_init.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        load_migrations(tmp_path)
