"""write_heartbeats and mark_offline directly on PostgreSQL."""

from __future__ import annotations

import uuid
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


async def test_the_write_names_each_devices_active_rollout_and_if_assigned(
    pool,
) -> None:
    """One probe of the active target gives both: whether the target waits for
    the device (progress) and which rollout holds it (the analysis)."""
    told = await make_device(pool)
    waiting, done, free = [await make_device(pool, told.tenant) for _ in range(3)]
    artifact, rid = uuid.uuid4(), uuid.uuid4()
    await pool.execute(
        "INSERT INTO artifacts (id, tenant, uri, sha256) "
        "VALUES ($1, $2, 'https://x/a', $3)",
        artifact,
        told.tenant,
        "d" * 64,
    )
    await pool.execute(
        "INSERT INTO rollouts (id, tenant, artifact_id, waves, status, current_wave,"
        " attempt) VALUES ($1, $2, $3, 2, 'running', 1, 1)",
        rid,
        told.tenant,
        artifact,
    )
    for device, wave, state, active in (
        (told, 1, "assigned", True),
        (waiting, 2, "pending", True),
        (done, 1, "applied", False),  # a rollout that ended lets go of it
    ):
        await pool.execute(
            "INSERT INTO rollout_targets (rollout_id, tenant, device_id, wave, state,"
            " active) VALUES ($1, $2, $3, $4, $5, $6)",
            rid,
            device.tenant,
            device.id,
            wave,
            state,
            active,
        )
    async with pool.acquire() as conn, conn.transaction():
        result = await write_heartbeats(
            conn, [_hb(d, 1) for d in (told, waiting, done, free)]
        )
    by_id = {c.device_id: (c.assigned, c.rollout_id) for c in result.changed}
    assert by_id == {
        told.id: (True, rid),
        waiting.id: (False, rid),
        done.id: (False, None),
        free.id: (False, None),
    }
    assert set(result.beats) == {(d.tenant, d.id) for d in (told, waiting, done, free)}


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
