"""The reconcile loop's counter audit against the real PostgreSQL: a wave whose
counters drifted from its targets is repaired within one walk, a consistent wave
(even one that moves during the walk) never is, and a tick's statements read the
same number of rows and buffers for a 100-target wave as for a 50,000-target one.

Runs on a database of its own: the session's scheduler would reconcile these
rollouts too."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tests.conftest import migrated_database
from xdp47_scheduler.metrics import RECONCILE_REPAIRS
from xdp47_scheduler.pg.audit import _RUNS, _SLICE, SLICE_ROWS, CounterAudit
from xdp47_scheduler.pg.reconcile import Reconciler

TENANT = "audit"


@pytest.fixture(scope="module")
async def apool(server_db_url: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    async with migrated_database(server_db_url, "xdp47_audit") as url:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
        assert pool is not None
        await pool.execute("INSERT INTO tenants (id, name) VALUES ($1, $1)", TENANT)
        yield pool
        await pool.close()


async def running_wave(pool: asyncpg.Pool[Any], n: int, prefix: str = "d") -> uuid.UUID:
    """A running rollout in wave 2 of 3: ``n`` applied targets in wave 1, ``n``
    assigned in wave 2 (``eligible = n``, nothing judged yet), none in wave 3."""
    rid, artifact = uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO artifacts (id, tenant, uri, sha256, version) "
            "VALUES ($1, $2, 'https://example.com/a', $3, '2.0')",
            artifact,
            TENANT,
            "a" * 64,
        )
        await conn.execute(
            "INSERT INTO rollouts (id, tenant, artifact_id, waves, status, "
            "current_wave, attempt, started_at) "
            "VALUES ($1, $2, $3, 3, 'running', 2, 1, now())",
            rid,
            TENANT,
            artifact,
        )
        started = await conn.fetchval(
            "INSERT INTO rollout_runs (rollout_id, attempt, wave, eligible, "
            "started_at) VALUES ($1, 1, 2, $2, now() - interval '1 minute') "
            "RETURNING started_at",
            rid,
            n,
        )
        # Wave 1's devices and wave 2's interleave in key order, as ranks do.
        await conn.execute(
            "INSERT INTO rollout_targets (rollout_id, tenant, device_id, wave, state,"
            " active, assigned_at) "
            "SELECT $1, $2, $5 || lpad(i::text, 7, '0'), 1 + i % 2,"
            " CASE WHEN i % 2 = 0 THEN 'applied' ELSE 'assigned' END,"
            " true, $4 FROM generate_series(0, 2 * $3 - 1) AS i",
            rid,
            TENANT,
            n,
            started,
            prefix,
        )
    await pool.execute("ANALYZE rollout_targets")
    return rid


async def run_counters(pool: asyncpg.Pool[Any], rid: uuid.UUID) -> dict[str, int]:
    r = await pool.fetchrow(
        "SELECT eligible, succeeded, failed, skipped FROM rollout_runs "
        "WHERE rollout_id = $1 AND attempt = 1 AND wave = 2",
        rid,
    )
    assert r is not None
    return dict(r)


async def settle(pool: asyncpg.Pool[Any], rid: uuid.UUID, k: int, state: str) -> None:
    """Judge ``k`` assigned targets of wave 2 the way the scheduler does: the
    targets and the run's counter in one transaction."""
    column = "succeeded" if state == "applied" else "failed"
    async with pool.acquire() as conn, conn.transaction():
        n = await conn.fetchval(
            "WITH m AS (UPDATE rollout_targets SET state = $3 WHERE ctid IN ("
            " SELECT ctid FROM rollout_targets WHERE rollout_id = $1 AND wave = 2"
            " AND state = 'assigned' ORDER BY device_id DESC LIMIT $2)"
            " RETURNING 1) SELECT count(*) FROM m",
            rid,
            k,
            state,
        )
        await conn.execute(
            f"UPDATE rollout_runs SET {column} = {column} + $2 "
            "WHERE rollout_id = $1 AND attempt = 1 AND wave = 2",
            rid,
            n,
        )


async def walk(pool: asyncpg.Pool[Any], audit: CounterAudit, ticks: int) -> int:
    repaired = 0
    for _ in range(ticks):
        repaired += await audit.tick(pool)
    return repaired


async def finish(pool: asyncpg.Pool[Any], rid: uuid.UUID) -> None:
    await pool.execute("UPDATE rollouts SET status = 'completed' WHERE id = $1", rid)
    await pool.execute(
        "UPDATE rollout_targets SET active = false WHERE rollout_id = $1", rid
    )


async def test_consistent_wave_moving_during_the_walk_is_not_repaired(
    apool: asyncpg.Pool[Any],
) -> None:
    rid = await running_wave(apool, 30)
    audit = CounterAudit(slice_rows=7)
    walk_ticks = math.ceil(60 / 7) + 1
    for _ in range(3 * walk_ticks):
        assert await audit.tick(apool) == 0
        await settle(apool, rid, 1, "applied")
    assert await run_counters(apool, rid) == {
        "eligible": 30,
        "succeeded": 3 * walk_ticks,
        "failed": 0,
        "skipped": 0,
    }
    await finish(apool, rid)


@pytest.mark.parametrize(
    "drift",
    [
        # A target judged without its counter (a manual edit, a bug).
        "UPDATE rollout_targets SET state = 'failed' WHERE rollout_id = $1 "
        "AND device_id IN ('d0000001', 'd0000003', 'd0000041')",
        # A counter moved without its target.
        "UPDATE rollout_runs SET succeeded = succeeded + 5 WHERE rollout_id = $1",
    ],
)
async def test_drift_is_repaired_within_one_walk(
    apool: asyncpg.Pool[Any], drift: str
) -> None:
    rid = await running_wave(apool, 30)
    await settle(apool, rid, 4, "applied")
    expected = await run_counters(apool, rid)
    audit = CounterAudit(slice_rows=7)
    assert await walk(apool, audit, 12) == 0  # positions the walk mid-rollout
    await apool.execute(drift, rid)
    expected["failed"] = await apool.fetchval(
        "SELECT count(*) FROM rollout_targets WHERE rollout_id = $1"
        " AND wave = 2 AND state = 'failed'",
        rid,
    )
    # The walk under way may end with the drift inside its bracket; the next one
    # cannot: at most two walks of ceil(60 / 7) slices (other rollouts finished).
    assert await walk(apool, audit, 2 * (math.ceil(60 / 7) + 1)) == 1
    assert await run_counters(apool, rid) == expected
    await finish(apool, rid)


async def test_reconciler_counts_the_repair(apool: asyncpg.Pool[Any]) -> None:
    rid = await running_wave(apool, 5)
    await apool.execute(
        "UPDATE rollout_runs SET eligible = 1 WHERE rollout_id = $1", rid
    )
    before = RECONCILE_REPAIRS.labels("counters")._value.get()
    reconciler = Reconciler(CounterAudit(slice_rows=SLICE_ROWS))
    assert (await reconciler.run(apool))["counters"] == 1
    assert RECONCILE_REPAIRS.labels("counters")._value.get() == before + 1
    assert (await run_counters(apool, rid))["eligible"] == 5
    assert (await reconciler.run(apool))["counters"] == 0
    await finish(apool, rid)


async def explain(pool: asyncpg.Pool[Any], sql: str, *args: Any) -> tuple[int, int]:
    """(shared buffers touched, rows read from rollout_targets) of one execution."""
    plan = json.loads(
        await pool.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *args)
    )[0]["Plan"]

    def rows(node: dict[str, Any]) -> int:
        own = (
            node["Actual Rows"] * node["Actual Loops"]
            if node.get("Relation Name") == "rollout_targets"
            else 0
        )
        return own + sum(rows(c) for c in node.get("Plans", []))

    return plan["Shared Hit Blocks"] + plan["Shared Read Blocks"], rows(plan)


async def test_a_tick_costs_the_same_for_a_small_and_a_huge_wave(
    apool: asyncpg.Pool[Any],
) -> None:
    await apool.execute("UPDATE rollouts SET status = 'completed'")
    sizes = (100, 10_000, 50_000)
    waves = {n: await running_wave(apool, n, f"s{n}-") for n in sizes}
    await apool.execute("VACUUM ANALYZE rollout_targets")
    runs = await explain(apool, _RUNS)
    assert runs[1] == 0  # the run rows only
    tick = {}
    full = {}
    for n, rid in waves.items():
        tick[n] = await explain(apool, _SLICE, rid, "", 2, SLICE_ROWS)
        # What the old statement counted every tick (the recount's check).
        full[n] = await explain(
            apool,
            "SELECT count(*) FROM rollout_targets AS t WHERE t.rollout_id = $1"
            " AND t.wave = 2 AND t.state IN ('assigned', 'pending') AND t.active",
            rid,
        )
    assert tick[100][1] == 200  # the whole rollout fits in one slice
    assert tick[10_000][1] == tick[50_000][1] == SLICE_ROWS
    # Bounded by the slice, not the wave: 5 x the wave, not 5 x the buffers (the
    # old count's grow with it), and a small part of what the old count touched.
    assert tick[50_000][0] <= 1.5 * tick[10_000][0], tick
    assert full[50_000][1] == 50_000
    assert full[50_000][0] >= 4 * full[10_000][0], full
    assert full[50_000][0] > 10 * tick[50_000][0], (full, tick)
    for rid in waves.values():
        await finish(apool, rid)
