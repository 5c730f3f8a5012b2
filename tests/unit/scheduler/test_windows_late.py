"""The engine under maintenance windows and with late joiners, on the in-memory
store (the SQL is held to the same behaviour in
tests/integration/scheduler/test_windows_late_sql.py).

The clock starts Thursday 2026-01-01 00:00 UTC; the windows are ``daily
02:00-03:00`` in each device's zone: 02:00 UTC for a device in UTC, 17:00 UTC
(the day before's evening there is past) for one in Asia/Tokyo.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from tests.unit.scheduler.memory_store import Device
from tests.unit.scheduler.test_engine import DEFAULTS, TENANT, World, start
from tests.unit.scheduler.test_engine import world as world  # the fixture
from xdp47_common.rollout import RolloutHold, RolloutKind, RolloutStatus

DEADLINE = timedelta(seconds=DEFAULTS.wave_deadline_seconds)


def _policy(world: World, **fields: object) -> uuid.UUID:
    pid = uuid.uuid4()
    world.store.state.policies[(TENANT, pid)] = dict(fields)
    return pid


def _late(world: World, rid: uuid.UUID) -> dict[str, int]:
    """The late joiners' waves."""
    return {
        d: t.wave
        for (r, d), t in world.store.state.targets.items()
        if r == rid and t.late
    }


async def test_a_windowed_wave_times_out_from_its_last_zone_opening(
    world: World,
) -> None:
    pid = _policy(world, maintenance_windows=["daily 02:00-03:00"])
    rid = world.rollout(devices=2, waves=1, policy_id=pid)
    world.store.state.devices[(TENANT, "d0")].timezone = "UTC"
    world.store.state.devices[(TENANT, "d1")].timezone = "Asia/Tokyo"
    await world.send(start(rid))
    t0 = world.clock.now

    # Past the deadline from the wave's start, but no window has opened.
    world.clock.now = t0 + DEADLINE * 2
    await world.engine.tick()
    assert world.r(rid).status is RolloutStatus.RUNNING
    # UTC's window opened at 02:00; Tokyo's has not: still no deadline.
    world.clock.now = t0 + timedelta(hours=2) + DEADLINE * 2
    await world.engine.tick()
    assert world.r(rid).status is RolloutStatus.RUNNING
    await world.report("d0")
    # Tokyo's window opened at 17:00 UTC: its deadline counts from there.
    world.clock.now = t0 + timedelta(hours=17) + DEADLINE - timedelta(seconds=1)
    await world.engine.tick()
    assert world.r(rid).status is RolloutStatus.RUNNING
    world.clock.now = t0 + timedelta(hours=17) + DEADLINE + timedelta(seconds=1)
    await world.engine.tick()
    r = world.r(rid)
    assert r.status is RolloutStatus.FAILED
    assert world.targets(rid) == {"d0": "applied", "d1": "failed"}
    # One row per zone the fleet names, plus the tenant's default.
    assert {z for (r_, z) in world.store.state.windows if r_ == rid} == {
        "",
        "UTC",
        "Asia/Tokyo",
    }


async def test_without_windows_the_deadline_counts_from_the_wave_start(
    world: World,
) -> None:
    pid = _policy(world)
    rid = world.rollout(devices=1, waves=1, policy_id=pid)
    await world.send(start(rid))
    world.clock.now += DEADLINE + timedelta(seconds=1)
    await world.engine.tick()
    assert world.r(rid).status is RolloutStatus.FAILED
    assert world.store.state.windows == {}


async def test_a_late_joiner_joins_the_current_wave_and_its_gate_waits(
    world: World,
) -> None:
    pid = _policy(world, late_joiners="current_wave")
    rid = world.rollout(devices=4, waves=2, policy_id=pid)
    await world.send(start(rid))
    first = sorted(world.targets(rid, 1))
    world.store.state.devices[(TENANT, "late")] = Device(TENANT, "late")
    await world.engine.tick()
    await world.engine.drain()
    assert _late(world, rid) == {"late": 1}
    assert world.targets(rid, 1)["late"] == "assigned"
    await world.report(*first)
    assert world.r(rid).current_wave == 1  # the late joiner is counted
    await world.report("late")
    assert world.r(rid).current_wave == 2
    # It joins once: a later look finds it has a target.
    await world.engine.tick()
    assert len(world.targets(rid)) == 5


async def test_a_late_joiner_not_heard_from_yet_joins_once_online(
    world: World,
) -> None:
    # Under skip_offline a device not online does not join (the follow-up would
    # skip it offline, out of the wave's count); it joins at a later look.
    pid = _policy(world, late_joiners="current_wave")
    rid = world.rollout(devices=4, waves=2, policy_id=pid)
    await world.send(start(rid))
    first = sorted(world.targets(rid, 1))
    world.store.state.devices[(TENANT, "late")] = Device(TENANT, "late", online=False)
    await world.engine.tick()
    await world.engine.drain()
    assert _late(world, rid) == {}
    world.store.state.devices[(TENANT, "late")].online = True
    world.clock.now += timedelta(seconds=31)  # the next look
    await world.engine.tick()
    await world.engine.drain()
    assert world.targets(rid, 1)["late"] == "assigned"
    await world.report(*first)
    assert world.r(rid).current_wave == 1  # the late joiner is counted
    await world.report("late")
    assert world.r(rid).current_wave == 2


async def test_a_late_joiner_joins_the_last_wave_by_default_setting(
    world: World,
) -> None:
    pid = _policy(world, late_joiners="last_wave")
    rid = world.rollout(devices=4, waves=2, policy_id=pid)
    await world.send(start(rid))
    world.store.state.devices[(TENANT, "late")] = Device(TENANT, "late")
    await world.engine.tick()
    assert _late(world, rid) == {"late": 2}
    assert world.targets(rid, 2)["late"] == "pending"
    await world.report(*sorted(world.targets(rid, 1)))
    assert world.r(rid).current_wave == 2
    assert set(world.targets(rid, 2).values()) == {"assigned"}
    assert len(world.targets(rid, 2)) == 3


@pytest.mark.parametrize("case", ["ignore", "held", "rollback", "had_a_target"])
async def test_no_late_joiner_when_the_rollout_takes_none(
    world: World, case: str
) -> None:
    setting = "ignore" if case == "ignore" else "current_wave"
    pid = _policy(world, late_joiners=setting)
    rid = world.rollout(devices=2, waves=1, policy_id=pid)
    await world.send(start(rid))
    if case == "held":
        world.r(rid).hold = RolloutHold.PAUSED
    if case == "rollback":
        world.r(rid).kind = RolloutKind.ROLLBACK
    world.store.state.devices[(TENANT, "late")] = Device(TENANT, "late")
    if case == "had_a_target":
        # Released by this rollout before: it never joins again.
        await world.engine.tick()
        world.store.state.targets[(rid, "late")].state = "skipped"
        world.store.state.targets[(rid, "late")].active = False
        assert await world.store.join_late() == 0
        return
    await world.engine.tick()
    assert _late(world, rid) == {}
    assert "late" not in world.targets(rid)
