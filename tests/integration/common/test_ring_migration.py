"""Migration 0028 on a database with recent-heartbeat rings: each jsonb array
becomes a json[] with the same entries in the same order (newest first), a
device without a ring keeps none, and the heartbeat statement's prepend and
slice then work on the converted column; the scheduler starts only on it."""

from __future__ import annotations

import json

import asyncpg
import pytest

from xdp47_common.adapters.migrations import load_migrations, migrate
from xdp47_scheduler.pg import database_problem

pytestmark = pytest.mark.integration

RING_AS_JSON_ARRAY = 28


def _entry(seq: int) -> dict[str, object]:
    return {
        "seq": seq,
        "at": f"2026-12-04T10:00:0{seq}Z",
        "health": "ok",
        "metrics": {"cpu": 0.5, "label": "ü"},
    }


async def test_rings_keep_their_entries_in_order(empty_db: str) -> None:
    before = [m for m in load_migrations() if m.version < RING_AS_JSON_ARRAY]
    conn = await asyncpg.connect(empty_db)
    try:
        await migrate(conn, before)
        await conn.execute("INSERT INTO tenants (id, name) VALUES ('a', 'a')")
        ring = [_entry(s) for s in (3, 2, 1)]
        await conn.execute(
            "INSERT INTO devices (tenant, id, recent_heartbeats)"
            " VALUES ('a', 'full', $1::jsonb), ('a', 'none', NULL),"
            " ('a', 'empty', '[]'::jsonb)",
            json.dumps(ring),
        )
        # A scheduler refuses to start on the old ring (its statement writes
        # json[]): heartbeats would fail and be dead-lettered.
        problem = await database_problem(empty_db, "here")
        assert problem is not None
        assert "run xdp47-migrate first" in problem
        assert RING_AS_JSON_ARRAY in await migrate(conn)
        assert await database_problem(empty_db, "here") is None
        rows = {
            r["id"]: r["ring"]
            for r in await conn.fetch(
                "SELECT id, recent_heartbeats::text[] AS ring FROM devices"
            )
        }
        assert [json.loads(e) for e in rows["full"]] == ring
        assert rows["none"] is None
        assert rows["empty"] is None  # no entries: no array
        # The heartbeat statement's update of the ring on the converted column.
        ring4 = await conn.fetchval(
            "UPDATE devices SET recent_heartbeats ="
            " ($1::text::json || recent_heartbeats)[1:3]"
            " WHERE id = 'full' RETURNING recent_heartbeats::text[]",
            json.dumps(_entry(4)),
        )
        assert [json.loads(e)["seq"] for e in ring4] == [4, 3, 2]
    finally:
        await conn.close()
