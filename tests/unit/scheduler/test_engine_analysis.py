"""The telemetry analysis through the engine on the in-memory store: heartbeat
batches feed the cohorts' aggregates, the gates read them."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tests.unit.scheduler.memory_store import MemoryRolloutStore
from tests.unit.scheduler.test_engine import (
    DEFAULTS,
    TENANT,
    Batch,
    Changed,
    Clock,
    Events,
    World,
    start,
)
from xdp47_common.messages import ResumeRollout
from xdp47_common.rollout import Cohort, RolloutHold, RolloutStatus
from xdp47_scheduler.engine import RolloutEngine

CHECK = "error_rate: updated - baseline <= 0.02"


@pytest.fixture
def world() -> World:
    clock = Clock()
    store = MemoryRolloutStore(clock)
    events = Events()
    engine = RolloutEngine(store, DEFAULTS, events, clock=clock)
    return World(store, engine, events, clock)


def _analysed(world: World, min_devices: int = 2) -> uuid.UUID:
    pid = uuid.uuid4()
    world.store.state.policies[(TENANT, pid)] = {
        "analysis": {"checks": [CHECK], "min_devices": min_devices}
    }
    return world.rollout(devices=6, waves=3, policy_id=pid)


async def _beat(
    world: World, rid: uuid.UUID, devices: list[str], *, applied: bool = False, **m: Any
) -> None:
    """One batch: these devices heartbeat with metrics ``m`` (and run the
    artifact, when ``applied``)."""
    state = world.store.state
    for d in devices:
        if applied:
            state.devices[(TENANT, d)].artifact = world.r(rid).artifact_id
    changed = tuple(
        Changed(
            TENANT,
            d,
            world.clock(),
            assigned=state.targets[(rid, d)].state == "assigned",
            rollout_id=rid,
            state=state.targets[(rid, d)].state,
            wave=state.targets[(rid, d)].wave,
            analysed_window=state.targets[(rid, d)].analysed_window,
        )
        for d in devices
    )
    beats = {(TENANT, d): SimpleNamespace(metrics=dict(m)) for d in devices}
    batch = cast(Any, Batch(changed, beats))
    await world.engine.after_write(None, batch)
    await world.engine.after_commit(batch)
    await world.engine.drain()


async def test_a_risen_error_rate_fails_wave_one(world: World) -> None:
    rid = _analysed(world)
    await world.send(start(rid))
    first = sorted(world.targets(rid, 1))
    later = sorted(d for d in world.targets(rid) if d not in first)
    await _beat(world, rid, later, error_rate=0.01, note="text is no sample")
    await _beat(world, rid, first, applied=True, error_rate=0.21)
    r = world.r(rid)
    assert r.status is RolloutStatus.FAILED
    assert (r.reason or "").startswith("wave 1: analysis failed: error_rate: ")
    assert "updated mean 0.21 (2 devices" in (r.reason or "")
    assert "baseline mean 0.01 (4 devices" in (r.reason or "")


async def test_only_the_current_cohorts_count(world: World) -> None:
    """Devices still updating are in no cohort; a device counts once however
    many heartbeats it sends."""
    rid = _analysed(world, min_devices=3)
    await world.send(start(rid))
    first = sorted(world.targets(rid, 1))
    later = sorted(d for d in world.targets(rid) if d not in first)
    await _beat(world, rid, first, error_rate=0.5)  # told, not applied yet
    await _beat(world, rid, later, error_rate=0.01)
    await _beat(world, rid, later, error_rate=0.03)
    async with world.store.transaction() as tx:
        row = await tx.lock(rid)
        assert row is not None
        observed = await tx.analysis(row)
    assert set(observed) == {(Cohort.BASELINE, "error_rate")}
    agg = observed[(Cohort.BASELINE, "error_rate")]
    assert (agg.devices, agg.samples) == (4, 8)
    assert agg.mean == pytest.approx(0.02)


async def test_too_few_updated_devices_hold_the_rollout_until_resumed(
    world: World,
) -> None:
    rid = _analysed(world, min_devices=3)
    await world.send(start(rid))
    first = sorted(world.targets(rid, 1))
    later = sorted(d for d in world.targets(rid) if d not in first)
    await _beat(world, rid, later, error_rate=0.01)
    await _beat(world, rid, first, applied=True, error_rate=0.011)
    r = world.r(rid)
    assert (r.status, r.current_wave) == (RolloutStatus.RUNNING, 1)
    assert r.hold is RolloutHold.ANALYSIS_INCONCLUSIVE
    assert (r.reason or "").startswith("wave 1: analysis inconclusive, rollout held")
    assert "updated 2 < min_devices 3" in (r.reason or "")
    assert world.events.names()[-1] == "analysis_held"
    # Held: the timer judges nothing, and tells nothing twice.
    await world.engine.tick()
    assert world.events.names().count("analysis_held") == 1
    assert (world.r(rid).current_wave, world.r(rid).hold) == (
        1,
        RolloutHold.ANALYSIS_INCONCLUSIVE,
    )
    # Resume judges the wave again: still too few updated devices, held again
    # with the reason; the operator's resume is the only way on (or abort).
    await world.send(ResumeRollout(tenant=TENANT, rollout_id=rid, requested_by="op"))
    names = world.events.names()
    assert names[-2:] == ["resumed", "analysis_held"]
    assert world.r(rid).hold is RolloutHold.ANALYSIS_INCONCLUSIVE


async def test_resume_goes_on_once_enough_devices_reported_meanwhile(
    world: World,
) -> None:
    rid = _analysed(world, min_devices=2)
    await world.send(start(rid))
    first = sorted(world.targets(rid, 1))
    later = sorted(d for d in world.targets(rid) if d not in first)
    await _beat(world, rid, later[:1], error_rate=0.01)  # a thin baseline
    await _beat(world, rid, first, applied=True, error_rate=0.011)
    assert world.r(rid).hold is RolloutHold.ANALYSIS_INCONCLUSIVE
    assert "baseline 1 < min_devices 2" in (world.r(rid).reason or "")
    # More baseline devices report while held; the rollout still waits ...
    await _beat(world, rid, later[1:], error_rate=0.01)
    await world.engine.tick()
    assert world.r(rid).hold is RolloutHold.ANALYSIS_INCONCLUSIVE
    assert world.r(rid).current_wave == 1
    # ... for the operator, whose resume judges the wave on them: it passes.
    await world.send(ResumeRollout(tenant=TENANT, rollout_id=rid, requested_by="op"))
    r = world.r(rid)
    assert (r.hold, r.current_wave) == (None, 2)
    assert world.events.names()[-3:] == ["resumed", "wave_finished", "wave_started"]
