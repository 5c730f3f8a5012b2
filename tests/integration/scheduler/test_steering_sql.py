"""The hold in PostgreSQL (``pg.rollouts``): a pause stores the hold and its
time, a resume clears it and moves the wave's clock by the time paused, a
promote marks the wave and a wave start clears the mark, an abort clears the
hold; the starter, the tenant's four-eyes setting and the policy's approval
gates are read back as the engine needs them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.scheduler.support import (
    gate_policy,
    make_fleet,
    make_policy,
    make_rollout,
)
from xdp47_common.rollout import (
    EffectivePolicy,
    RolloutHold,
    RolloutStatus,
    abort,
    pause,
    promote,
    resume,
)
from xdp47_scheduler.pg import PgRolloutStore

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
POLICY = gate_policy(
    grace_seconds=300, abort_on_zero_eligible=True, wave_deadline_seconds=900
)


async def test_pause_resume_promote_and_abort_in_sql(pool) -> None:
    fleet = await make_fleet(pool, 2)
    rid = await make_rollout(pool, fleet, waves=2)
    await pool.execute(
        "UPDATE rollouts SET status = 'running', attempt = 1, current_wave = 1, "
        "current_wave_started_at = $2 WHERE id = $1",
        rid,
        T0,
    )
    store = PgRolloutStore(pool)
    paused_at = T0 + timedelta(seconds=40)
    async with store.transaction() as tx:
        row = await tx.lock(rid)
        assert row is not None
        await tx.apply(row, pause(row.state(), "token:a", paused_at), "paused")
    async with store.transaction() as tx:
        row = await tx.lock(rid)
        assert row is not None
        assert (row.hold, row.held_since) == (RolloutHold.PAUSED, paused_at)
        assert row.status is RolloutStatus.RUNNING
        resumed = resume(row.state(), "token:a", paused_at + timedelta(minutes=10))
        await tx.apply(row, resumed, resumed.reason)
    async with store.transaction() as tx:
        row = await tx.lock(rid)
        assert row is not None
        assert (row.hold, row.held_since) == (None, None)
        assert row.current_wave_started_at == T0 + timedelta(minutes=10)
        now = row.current_wave_started_at + timedelta(seconds=5)
        await tx.apply(row, promote(row.state(), "token:a", POLICY, now), "promoted")
    async with store.transaction() as tx:
        row = await tx.lock(rid)
        assert row is not None
        assert row.grace_skipped is True
        await tx.apply(row, pause(row.state(), "token:a", now), "paused")
    async with store.transaction() as tx:
        row = await tx.lock(rid)
        assert row is not None
        ended = abort(row.state(), by="token:a")
        await tx.apply(row, ended, ended.reason)
    stored = await pool.fetchrow(
        "SELECT status, hold, held_since, grace_skipped FROM rollouts WHERE id = $1",
        rid,
    )
    assert dict(stored) == {
        "status": "aborted",
        "hold": None,
        "held_since": None,
        "grace_skipped": False,
    }


async def test_starter_four_eyes_and_approval_gates_are_read_back(pool) -> None:
    fleet = await make_fleet(pool, 1)
    pid = await make_policy(pool, fleet.tenant, approval_before_waves=[2, 3])
    rid = await make_rollout(pool, fleet, waves=3, policy_id=pid)
    store = PgRolloutStore(pool)
    async with store.transaction() as tx:
        assert await tx.four_eyes(fleet.tenant) is False
        await tx.save_starter(rid, "token:starter")
        overrides = await tx.policy_overrides(fleet.tenant, pid)
    await pool.execute(
        "UPDATE tenants SET four_eyes_approval = true WHERE id = $1", fleet.tenant
    )
    async with store.transaction() as tx:
        assert await tx.four_eyes(fleet.tenant) is True
        row = await tx.lock(rid)
        assert row is not None
        assert row.started_by == "token:starter"
    policy = EffectivePolicy.resolve(overrides, POLICY)
    assert policy.approval_before_waves == (2, 3)
    assert policy.needs_approval(2)
    assert not policy.needs_approval(1)


async def test_the_database_refuses_a_hold_outside_running(pool) -> None:
    fleet = await make_fleet(pool, 1)
    rid = await make_rollout(pool, fleet)
    with pytest.raises(Exception, match="rollouts_hold_running"):
        await pool.execute("UPDATE rollouts SET hold = 'paused' WHERE id = $1", rid)
