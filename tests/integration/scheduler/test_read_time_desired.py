"""Wave start as a pointer flip: what ingest's desired-state read answers right
after the engine's commits, abort, fleet changes between plan and wave start, and
the reservation of unwritten waves by a running rollout.

The engine is driven directly (its ``handle_command``/``evaluate``/``drain``), and
devices are read with ingest's own query (``read_device``), so each assertion is
about the state right after a commit, not after some polling delay.
"""

from __future__ import annotations

import bisect
import json
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from xdp47_common.messages import AbortRollout, StartRollout
from xdp47_common.rollout import EffectivePolicy
from xdp47_common.rollout.planner import ordering_key
from xdp47_common.tokens import hash_secret
from xdp47_ingest.pg import read_device
from xdp47_scheduler.engine import RolloutEngine
from xdp47_scheduler.pg import waves

from .support import (
    Fleet,
    SimDevice,
    add_devices,
    gate_policy,
    make_fleet,
    make_policy,
    make_rollout,
    rollout_row,
    targets,
)

pytestmark = pytest.mark.integration

DEFAULTS = gate_policy()


@pytest.fixture
def engine(sql_engine: Callable[[EffectivePolicy], RolloutEngine]) -> RolloutEngine:
    return sql_engine(DEFAULTS)


async def _answer(pool: asyncpg.Pool[Any], d: SimDevice) -> dict[str, Any]:
    view = await read_device(pool, hash_secret(d.credential), db_timeout=5)
    assert view is not None
    answer: dict[str, Any] = json.loads(view.payload)
    return answer


async def _start(engine: RolloutEngine, fleet: Fleet, rid: uuid.UUID) -> None:
    await engine.handle_command(
        StartRollout(tenant=fleet.tenant, rollout_id=rid, requested_by="tests")
    )


async def _pass_gate(pool: asyncpg.Pool[Any], rid: uuid.UUID) -> None:
    """What the heartbeat hook does when every device of the wave applied: the
    targets and the run's counter, in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        wave = await conn.fetchval(
            "SELECT current_wave FROM rollouts WHERE id = $1", rid
        )
        await conn.execute(
            "UPDATE rollout_targets SET state = 'applied', finished_at = now() "
            "WHERE rollout_id = $1 AND wave = $2 AND state = 'assigned'",
            rid,
            wave,
        )
        await conn.execute(
            "UPDATE rollout_runs SET succeeded = eligible "
            "WHERE rollout_id = $1 AND wave = $2",
            rid,
            wave,
        )


def _by_wave(fleet: Fleet, t: dict[str, Any]) -> dict[int, list[SimDevice]]:
    waves: dict[int, list[SimDevice]] = {}
    for d in fleet.devices:
        if d.id in t:
            waves.setdefault(t[d.id]["wave"], []).append(d)
    return waves


async def test_wave_advance_is_visible_to_ingest_at_the_evaluate_commit(
    pool: asyncpg.Pool[Any], engine: RolloutEngine
) -> None:
    fleet = await make_fleet(pool, 9)
    rid = await make_rollout(pool, fleet, waves=3)
    await _start(engine, fleet, rid)
    # Wave 1 is told with the START commit, before any follow-up ran.
    t = await targets(pool, rid)
    wave1 = [d for d in fleet.devices if d.id in t and t[d.id]["wave"] == 1]
    assert len(wave1) == 3
    for d in wave1:
        answer = await _answer(pool, d)
        assert (answer["action"], answer["artifact_id"], answer["rollout_id"]) == (
            "update",
            str(fleet.artifact_id),
            str(rid),
        )
    await engine.drain()
    t = await targets(pool, rid)
    waves = _by_wave(fleet, t)
    assert {w: len(ds) for w, ds in waves.items()} == {1: 3, 2: 3}
    assert {t[d.id]["state"] for d in waves[1]} == {"assigned"}
    assert {t[d.id]["state"] for d in waves[2]} == {"pending"}  # written ahead
    for d in waves[2]:  # written, not started: not told
        assert (await _answer(pool, d))["action"] == "none"
    (run,) = await pool.fetch("SELECT * FROM rollout_runs WHERE rollout_id = $1", rid)
    assert (run["eligible"], run["skipped"]) == (3, 0)

    await _pass_gate(pool, rid)
    await engine.evaluate(rid)
    # Right after the commit of the flip: wave 2 is told, its rows not moved yet
    # (or moved by the follow-up meanwhile; either way the answer is the same).
    for d in waves[2]:
        answer = await _answer(pool, d)
        assert (answer["action"], answer["rollout_id"]) == ("update", str(rid))
    row = await rollout_row(pool, rid)
    assert (row["status"], row["current_wave"]) == ("running", 2)
    run2 = await pool.fetchrow(
        "SELECT * FROM rollout_runs WHERE rollout_id = $1 AND wave = 2", rid
    )
    assert run2 is not None
    assert run2["eligible"] == 3  # from the count written ahead, not a recount
    await engine.drain()
    t = await targets(pool, rid)
    assert {t[d.id]["state"] for d in waves[2]} == {"assigned"}
    assert sum(1 for r in t.values() if r["wave"] == 3) == 3  # next, ahead
    # The API shows the same desired state (the shared definition).
    api = await pool.fetchrow(
        "SELECT desired_artifact_id FROM devices WHERE id = $1", waves[2][0].id
    )
    assert api is not None
    assert api["desired_artifact_id"] is None  # kept only once applied


async def test_skip_offline_is_decided_by_the_follow_up_never_told(
    pool: asyncpg.Pool[Any], engine: RolloutEngine
) -> None:
    fleet = await make_fleet(pool, 4, status="offline")
    rid = await make_rollout(pool, fleet, waves=1)
    await _start(engine, fleet, rid)
    for d in fleet.devices:  # never told, even before the follow-up ran
        assert (await _answer(pool, d))["action"] == "none"
    await engine.drain()
    t = await targets(pool, rid)
    assert {(r["state"], r["reason"]) for r in t.values()} == {("skipped", "offline")}
    row = await rollout_row(pool, rid)
    (run,) = await pool.fetch("SELECT * FROM rollout_runs WHERE rollout_id = $1", rid)
    assert (run["eligible"], run["skipped"]) == (0, 4)
    assert row["status"] == "partial"  # decided by the follow-up's evaluation


async def test_without_a_kept_policy_skip_offline_follows_the_settings_default(
    pool: asyncpg.Pool[Any], engine: RolloutEngine
) -> None:
    """A running rollout without ``effective_policy`` (started before it was
    kept): its offline devices are neither told nor assigned, as under the
    default XDP47_SCHED_SKIP_OFFLINE=true, in both the desired-state SQL and the
    wave-start follow-up."""
    fleet = await make_fleet(pool, 4)
    rid = await make_rollout(pool, fleet, waves=2)
    await _start(engine, fleet, rid)
    await engine.drain()
    await pool.execute("UPDATE rollouts SET effective_policy = NULL WHERE id = $1", rid)
    waves = _by_wave(fleet, await targets(pool, rid))
    await pool.execute(
        "UPDATE devices SET status = 'offline' WHERE tenant = $1 AND id = ANY($2)",
        fleet.tenant,
        [d.id for d in waves[2]],
    )
    await _pass_gate(pool, rid)
    await engine.evaluate(rid)
    for d in waves[2]:
        assert (await _answer(pool, d))["action"] == "none"
    await engine.drain()
    t = await targets(pool, rid)
    assert {(t[d.id]["state"], t[d.id]["reason"]) for d in waves[2]} == {
        ("skipped", "offline")
    }


async def test_abort_answers_none_at_once_and_keeps_applied_versions(
    pool: asyncpg.Pool[Any], engine: RolloutEngine
) -> None:
    fleet = await make_fleet(pool, 6)
    pid = await make_policy(pool, fleet.tenant, grace_seconds=600)
    rid = await make_rollout(pool, fleet, waves=2, policy_id=pid)
    await _start(engine, fleet, rid)
    await engine.drain()
    t = await targets(pool, rid)
    waves = _by_wave(fleet, t)
    lucky = waves[1][0]
    # The device applied it: its heartbeat is written and its target settled.
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE devices SET current_artifact_id = $3, health = 'ok' "
            "WHERE tenant = $1 AND id = $2",
            fleet.tenant,
            lucky.id,
            fleet.artifact_id,
        )
        await engine.after_write(conn, _changed(fleet.tenant, [lucky.id]))
    assert (await targets(pool, rid))[lucky.id]["state"] == "applied"

    await engine.handle_command(
        AbortRollout(tenant=fleet.tenant, rollout_id=rid, requested_by="ops")
    )
    for d in fleet.devices:
        answer = await _answer(pool, d)
        assert answer["action"] == "none"
        if d is lucky:  # keeps the version it updated to
            assert answer["artifact_id"] == str(fleet.artifact_id)
        else:
            assert answer["artifact_id"] is None
    t = await targets(pool, rid)
    assert not any(r["active"] for r in t.values())


async def test_abort_right_after_a_wave_start_leaves_no_target_behind(
    pool: asyncpg.Pool[Any], engine: RolloutEngine
) -> None:
    fleet = await make_fleet(pool, 8)
    rid = await make_rollout(pool, fleet, waves=4)
    await _start(engine, fleet, rid)
    # The follow-up (assign wave 1, write wave 2 ahead) may run concurrently.
    await engine.handle_command(
        AbortRollout(tenant=fleet.tenant, rollout_id=rid, requested_by="ops")
    )
    for d in fleet.devices:
        assert (await _answer(pool, d))["action"] == "none"
    await engine.drain()
    t = await targets(pool, rid)
    assert not any(r["active"] for r in t.values())
    assert {r["state"] for r in t.values()} == {"skipped"}


async def test_devices_joining_after_the_plan_join_only_unwritten_waves(
    pool: asyncpg.Pool[Any], engine: RolloutEngine
) -> None:
    fleet = await make_fleet(pool, 12)
    rid = await make_rollout(pool, fleet, waves=4)
    await _start(engine, fleet, rid)
    await engine.drain()  # waves 1 and 2 written
    firsts = await pool.fetchval(
        "SELECT firsts FROM rollout_plans WHERE rollout_id = $1", rid
    )

    def wave_of(d: SimDevice) -> int:
        return bisect.bisect_right(firsts, ordering_key(rid, d.id) + d.id)

    # Random ids: wave 3's key range can be narrow, so devices join until one
    # falls in it (24 at a time).
    joined: list[SimDevice] = []
    for batch in range(10):
        joined += await add_devices(pool, fleet.tenant, 24, prefix=f"late{batch}-")
        if any(wave_of(d) == 3 for d in joined):
            break
    by_wave = {w: [d for d in joined if wave_of(d) == w] for w in (1, 2, 3, 4)}
    assert by_wave[3], "240 random ids should give wave 3 a newcomer"
    for _ in range(2):  # start waves 2 and 3
        await _pass_gate(pool, rid)
        await engine.evaluate(rid)
        await engine.drain()
    t = await targets(pool, rid)
    # Waves 1 and 2 were written before they joined: they are not in them.
    for d in by_wave[1] + by_wave[2]:
        assert d.id not in t
        assert (await _answer(pool, d))["action"] == "none"
    # Wave 3 was written when wave 2 started: they are in it, and told now.
    for d in by_wave[3]:
        assert t[d.id]["wave"] == 3
        assert (await _answer(pool, d))["action"] == "update"
    for d in by_wave[4]:  # written ahead now, pending
        assert (t[d.id]["wave"], t[d.id]["state"]) == (4, "pending")


async def test_a_running_rollout_reserves_its_unwritten_waves(
    pool: asyncpg.Pool[Any], engine: RolloutEngine
) -> None:
    fleet = await make_fleet(pool, 12, labels={"ring": "a"})
    others = await add_devices(pool, fleet.tenant, 4, labels={"ring": "b"})
    first = await make_rollout(pool, fleet, waves=4, selector={"ring": "a"})
    await _start(engine, fleet, first)
    await engine.drain()
    t_first = await targets(pool, first)
    assert len(t_first) < 12  # waves 3 and 4 not written yet
    # A later rollout over the whole fleet takes only the devices `first` does
    # not hold or reserve, written or not.
    later = await make_rollout(pool, fleet, waves=1)
    await _start(engine, fleet, later)
    await engine.drain()
    t_later = await targets(pool, later)
    assert set(t_later) == {d.id for d in others}
    plan = await pool.fetchrow(
        "SELECT total FROM rollout_plans WHERE rollout_id = $1", later
    )
    assert plan is not None
    assert plan["total"] == 4
    # `first` goes on to write and tell every one of its devices.
    for _ in range(3):
        await _pass_gate(pool, first)
        await engine.evaluate(first)
        await engine.drain()
    t_first = await targets(pool, first)
    assert set(t_first) == {d.id for d in fleet.devices}
    assert (await rollout_row(pool, first))["current_wave"] == 4
    for d in fleet.devices:
        assert (await _answer(pool, d))["rollout_id"] == str(first)


async def test_reservation_ends_when_the_last_wave_is_written(
    pool: asyncpg.Pool[Any], engine: RolloutEngine
) -> None:
    fleet = await make_fleet(pool, 4, labels={"ring": "a"})
    first = await make_rollout(pool, fleet, waves=2, selector={"ring": "a"})
    await _start(engine, fleet, first)
    await engine.drain()  # wave 2 written ahead: every device is a target now
    newcomer = (await add_devices(pool, fleet.tenant, 1, labels={"ring": "a"}))[0]
    later = await make_rollout(pool, fleet, waves=1, selector={"ring": "a"})
    await _start(engine, fleet, later)
    await engine.drain()
    # The written targets still hold `first`'s devices; the newcomer is free.
    assert set(await targets(pool, later)) == {newcomer.id}


def _changed(tenant: str, ids: list[str]) -> Any:
    from datetime import UTC, datetime

    from xdp47_scheduler.heartbeats import DeviceHeartbeatState, HeartbeatWriteResult

    now = datetime.now(UTC)
    return HeartbeatWriteResult(
        changed=tuple(
            DeviceHeartbeatState(
                tenant=tenant,
                device_id=i,
                last_seen=now,
                state="assigned",
            )
            for i in ids
        ),
        unknown=0,
        stale=0,
        superseded=0,
    )


async def test_a_failure_reported_before_the_follow_up_assigned_it_counts(
    pool: asyncpg.Pool[Any], engine: RolloutEngine
) -> None:
    """A device is told at the wave start's commit (read time), before the
    follow-up moves its target to ``assigned``: a failure it reports in between
    names this rollout and attempt, so the follow-up must not take it as the
    device's old last apply (the baseline) and leave the wave waiting for its
    deadline."""
    fleet = await make_fleet(pool, 1)
    rid = await make_rollout(pool, fleet, waves=1)
    await _start(engine, fleet, rid)
    await engine.drain()
    (device,) = fleet.devices
    # As if the follow-up had not reached this target yet when the report came.
    await pool.execute(
        "UPDATE rollout_targets SET state = 'pending', assigned_at = NULL, "
        "baseline_apply = NULL WHERE rollout_id = $1",
        rid,
    )
    failure = {
        "result": "failed",
        "artifact_id": str(fleet.artifact_id),
        "rollout_id": str(rid),
        "attempt": 1,
        "code": "apply_failed",
        "reason": "the install script exited 1",
    }
    await pool.execute(
        "UPDATE devices SET last_apply = $3::text::jsonb WHERE tenant = $1 AND id = $2",
        fleet.tenant,
        device.id,
        json.dumps(failure),
    )
    async with pool.acquire() as conn, conn.transaction():
        assert await waves.assign_chunk(conn, rid, 10) == 1
    t = (await targets(pool, rid))[device.id]
    assert t["baseline_apply"] is None
    # Judged as this attempt's failure: failed, or granted a retry (policy).
    assert t["state"] == "failed" or t["device_attempt"] == 2, dict(t)
