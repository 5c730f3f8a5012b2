"""Roll back on the in-memory store: the command, the rollback rollout it starts,
and ``on_failure: rollback`` starting one by itself, exactly once."""

from __future__ import annotations

import uuid

from tests.unit.scheduler.memory_store import Device
from tests.unit.scheduler.test_engine import (
    ARTIFACT,
    TENANT,
    Batch,
    Changed,
    World,
    commands,
    start,
    world,
)
from xdp47_common.messages import RollbackRollout
from xdp47_common.rollout import RolloutKind, RolloutStatus

__all__ = ["world"]  # the fixture, imported

OLD = uuid.uuid4()  # what every device ran before the rollout of ARTIFACT


def fleet(w: World, devices: int = 4) -> None:
    for i in range(devices):
        w.store.state.devices[(TENANT, f"d{i}")] = Device(TENANT, f"d{i}", artifact=OLD)


async def report_artifact(w: World, artifact: uuid.UUID, *device_ids: str) -> None:
    """These devices now run ``artifact``: one heartbeat batch."""
    for d in device_ids:
        w.store.state.devices[(TENANT, d)].artifact = artifact
    batch = Batch(tuple(Changed(TENANT, d, w.clock()) for d in device_ids))
    await w.engine.after_write(None, batch)  # type: ignore[arg-type]
    await w.engine.after_commit(batch)  # type: ignore[arg-type]
    await w.engine.drain()


def rollback_cmd(
    rid: uuid.UUID,
    *,
    rollback_id: uuid.UUID | None = None,
    policy_id: uuid.UUID | None = None,
) -> RollbackRollout:
    return RollbackRollout(
        tenant=TENANT,
        rollout_id=rid,
        rollback_id=rollback_id or uuid.uuid4(),
        policy_id=policy_id,
        requested_by="token:op",
    )


def rollbacks(w: World, rid: uuid.UUID) -> list[uuid.UUID]:
    return [r.id for r in w.store.state.rollouts.values() if r.rollback_of == rid]


async def completed_rollout(w: World) -> uuid.UUID:
    fleet(w)
    rid = w.rollout(devices=4, waves=2)
    await w.send(start(rid))
    await w.report(*sorted(w.targets(rid, 1)))
    await w.report(*sorted(w.targets(rid, 2)))
    assert w.r(rid).status is RolloutStatus.COMPLETED
    return rid


async def test_a_target_records_what_its_device_ran_before(world: World) -> None:
    rid = await completed_rollout(world)
    froms = {t.from_artifact for t in world.store.state.targets.values()}
    assert froms == {OLD}
    assert world.targets(rid) == dict.fromkeys(("d0", "d1", "d2", "d3"), "applied")


async def test_rollback_sends_every_device_back_in_waves(world: World) -> None:
    rid = await completed_rollout(world)
    back = uuid.uuid4()
    await world.send(rollback_cmd(rid, rollback_id=back))

    rb = world.r(back)
    assert (rb.kind, rb.rollback_of, rb.status) == (
        RolloutKind.ROLLBACK,
        rid,
        RolloutStatus.RUNNING,
    )
    assert world.r(rid).status is RolloutStatus.COMPLETED  # unchanged
    assert {
        t.artifact for (r, _), t in world.store.state.targets.items() if r == back
    } == {OLD}
    first = sorted(world.targets(back, 1))
    assert len(first) == 2
    assert sorted(world.targets(back, 2).values()) == [
        "pending",
        "pending",
    ]
    await report_artifact(world, OLD, *first)
    assert world.r(back).current_wave == 2
    await report_artifact(world, OLD, *sorted(world.targets(back, 2)))
    assert world.r(back).status is RolloutStatus.COMPLETED
    assert "rollback_started" in world.events.names()


async def test_devices_that_never_applied_are_left_alone(world: World) -> None:
    fleet(world)
    rid = world.rollout(devices=4, waves=2)
    await world.send(start(rid))
    bad, good = sorted(world.targets(rid, 1))
    await world.report(good)
    await world.report(bad, ok=False)
    assert world.r(rid).status is RolloutStatus.FAILED

    back = uuid.uuid4()
    await world.send(rollback_cmd(rid, rollback_id=back))
    assert world.targets(back) == {good: "assigned"}


async def test_a_running_rollout_is_aborted_first(world: World) -> None:
    fleet(world)
    rid = world.rollout(devices=4, waves=2)
    await world.send(start(rid))
    first = sorted(world.targets(rid, 1))
    await world.report(first[0])
    back = uuid.uuid4()
    await world.send(rollback_cmd(rid, rollback_id=back))

    r = world.r(rid)
    assert r.status is RolloutStatus.ABORTED
    assert r.reason == "aborted by token:op: rolled back"
    # Only the device that applied goes back; the rest were never told again.
    assert world.targets(back) == {first[0]: "assigned"}
    assert not any(
        t.active for (x, _), t in world.store.state.targets.items() if x == rid
    )


async def test_refusals_create_nothing(world: World) -> None:
    fleet(world)
    rid = world.rollout(devices=4, waves=2)
    rejected = commands("rollback", "rejected")
    # A draft: its status does not accept a rollback.
    await world.send(rollback_cmd(rid))
    # Running, but nothing applied yet.
    await world.send(start(rid))
    await world.send(rollback_cmd(rid))
    assert world.r(rid).status is RolloutStatus.RUNNING
    assert commands("rollback", "rejected") == rejected + 2
    assert rollbacks(world, rid) == []


async def test_a_rollback_cannot_be_rolled_back(world: World) -> None:
    rid = await completed_rollout(world)
    back = uuid.uuid4()
    await world.send(rollback_cmd(rid, rollback_id=back))
    await report_artifact(world, OLD, *sorted(world.targets(back, 1)))
    rejected = commands("rollback", "rejected")
    await world.send(rollback_cmd(back))
    assert commands("rollback", "rejected") == rejected + 1
    assert rollbacks(world, back) == []


async def test_a_redelivered_rollback_starts_one_rollback(world: World) -> None:
    rid = await completed_rollout(world)
    command = rollback_cmd(rid)
    await world.send(command)
    await world.send(command)
    assert rollbacks(world, rid) == [command.rollback_id]


async def test_rollback_under_a_named_policy(world: World) -> None:
    rid = await completed_rollout(world)
    policy = uuid.uuid4()
    world.store.state.policies[(TENANT, policy)] = {"grace_seconds": 30}
    back = uuid.uuid4()
    await world.send(rollback_cmd(rid, rollback_id=back, policy_id=policy))
    rb = world.r(back)
    assert rb.policy_id == policy
    assert rb.effective_policy is not None
    assert rb.effective_policy["grace_seconds"] == 30


async def test_on_failure_rollback_starts_a_rollback_once(world: World) -> None:
    fleet(world)
    policy = uuid.uuid4()
    world.store.state.policies[(TENANT, policy)] = {"on_failure": "rollback"}
    rid = world.rollout(devices=4, waves=2, policy_id=policy)
    await world.send(start(rid))
    bad, good = sorted(world.targets(rid, 1))
    await world.report(good)
    await world.report(bad, ok=False)
    assert world.r(rid).status is RolloutStatus.FAILED

    [back] = rollbacks(world, rid)
    assert world.r(back).status is RolloutStatus.RUNNING
    assert world.targets(back) == {good: "assigned"}
    # The timer evaluating again (and further heartbeats) start no second one.
    await world.engine.tick()
    await world.report(good, bad, ok=False)
    assert rollbacks(world, rid) == [back]

    await report_artifact(world, OLD, good)
    assert world.r(back).status is RolloutStatus.COMPLETED
    # A failed rollback does not roll itself back (it would send devices forward).
    assert rollbacks(world, back) == []


async def test_on_failure_stop_is_the_default(world: World) -> None:
    fleet(world)
    rid = world.rollout(devices=4, waves=2)
    await world.send(start(rid))
    bad, good = sorted(world.targets(rid, 1))
    await world.report(good)
    await world.report(bad, ok=False)
    assert world.r(rid).status is RolloutStatus.FAILED
    assert rollbacks(world, rid) == []


async def test_a_refused_downgrade_fails_the_device_with_its_reason(
    world: World,
) -> None:
    fleet(world)
    rid = world.rollout(devices=2, waves=1)
    await world.send(start(rid))
    device = world.store.state.devices[(TENANT, "d0")]
    device.failed_artifact, device.failed_code = ARTIFACT, "downgrade"
    await world.report("d1")
    batch = Batch((Changed(TENANT, "d0", world.clock()),))
    await world.engine.after_write(None, batch)  # type: ignore[arg-type]
    await world.engine.after_commit(batch)  # type: ignore[arg-type]
    await world.engine.drain()
    target = world.store.state.targets[(rid, "d0")]
    assert (target.state, target.reason) == ("failed", "downgrade")
    assert world.r(rid).status is RolloutStatus.FAILED
