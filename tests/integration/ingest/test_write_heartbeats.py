"""write_heartbeats and mark_offline directly on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.integration.ingest.conftest import make_device
from xdp47_common.clock import utcnow
from xdp47_common.messages import Heartbeat, HeartbeatBatch
from xdp47_scheduler.heartbeats import mark_offline, write_heartbeats

pytestmark = pytest.mark.integration


def _hb(device, seq: int, version: str = "v", at=None) -> HeartbeatBatch:
    return HeartbeatBatch(
        tenant=device.tenant,
        heartbeats=[
            Heartbeat(
                seq=seq,
                device_id=device.id,
                current_version=version,
                received_at=at or utcnow(),
            )
        ],
    )


async def test_batch_keeps_highest_seq_and_counts_what_it_ignored(pool) -> None:
    a, b = await make_device(pool), await make_device(pool)
    ghost = type(a)(a.tenant, "no-such-device", a.credential)
    batch = [
        _hb(a, 3, "a3"),
        _hb(a, 7, "a7"),
        _hb(a, 5, "a5"),
        _hb(b, 1),
        _hb(ghost, 1),
    ]
    async with pool.acquire() as conn, conn.transaction():
        result = await write_heartbeats(conn, batch)
    assert {c.device_id for c in result.changed} == {a.id, b.id}
    assert (result.unknown, result.stale, result.superseded) == (1, 0, 2)
    assert await pool.fetchval("SELECT last_seq FROM devices WHERE id = $1", b.id) == 1
    row = await pool.fetchrow("SELECT * FROM devices WHERE id = $1", a.id)
    assert (row["last_seq"], row["current_version"], row["status"]) == (
        7,
        "a7",
        "online",
    )

    async with pool.acquire() as conn, conn.transaction():
        again = await write_heartbeats(conn, [_hb(a, 7, "dup"), _hb(a, 6, "older")])
    assert again.changed == ()
    assert again.stale == 1
    row = await pool.fetchrow("SELECT * FROM devices WHERE id = $1", a.id)
    assert (row["last_seq"], row["current_version"]) == (7, "a7")


async def test_empty_batch_is_a_no_op(pool) -> None:
    async with pool.acquire() as conn:
        result = await write_heartbeats(conn, [])
    assert result.changed == ()
    assert result.unknown == 0


async def test_mark_offline_only_touches_silent_online_devices(pool) -> None:
    silent, fresh = await make_device(pool), await make_device(pool)
    long_ago = utcnow() - timedelta(hours=1)
    async with pool.acquire() as conn:
        await write_heartbeats(conn, [_hb(silent, 1, at=long_ago), _hb(fresh, 1)])
        went = await mark_offline(conn, utcnow() - timedelta(minutes=5))
    assert went >= 1
    rows = {
        r["id"]: r["status"]
        for r in await pool.fetch(
            "SELECT id, status FROM devices WHERE id = ANY($1)", [silent.id, fresh.id]
        )
    }
    assert rows == {silent.id: "offline", fresh.id: "online"}
    # The next heartbeat brings it back.
    async with pool.acquire() as conn:
        result = await write_heartbeats(conn, [_hb(silent, 2)])
    assert [c.device_id for c in result.changed] == [silent.id]
    status = await pool.fetchval("SELECT status FROM devices WHERE id = $1", silent.id)
    assert status == "online"
