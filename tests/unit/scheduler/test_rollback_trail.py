"""Roll back in the audit trail and under steering: the command's record with
the phases before and after, the decisions it causes (on the rolled-back
rollout and on the rollback), and a rollback of a held rollout."""

from __future__ import annotations

import uuid
from typing import Any

from tests.unit.scheduler.test_engine import TENANT, World, start, world
from tests.unit.scheduler.test_rollback import fleet, rollback_cmd, rollbacks
from xdp47_common.messages import PauseRollout
from xdp47_common.rollout import RolloutHold, RolloutStatus

__all__ = ["world"]  # the fixture, imported


def brief(w: World, rid: uuid.UUID) -> list[tuple[Any, ...]]:
    return [
        (e.action, e.actor, e.on_behalf_of, e.status_before, e.status_after, e.outcome)
        for e in w.store.state.trail
        if e.rollout_id == rid
    ]


async def test_a_paused_rollout_is_rolled_back_and_the_trail_says_so(
    world: World,
) -> None:
    fleet(world)
    rid = world.rollout(devices=4, waves=2)
    await world.send(start(rid))
    first = sorted(world.targets(rid, 1))
    await world.report(first[0])
    await world.send(
        PauseRollout(tenant=TENANT, rollout_id=rid, requested_by="token:op")
    )
    assert world.r(rid).hold is RolloutHold.PAUSED
    back = uuid.uuid4()
    before = len(world.store.state.trail)

    await world.send(rollback_cmd(rid, rollback_id=back))

    assert world.r(rid).status is RolloutStatus.ABORTED
    assert world.targets(back) == {first[0]: "assigned"}
    added = world.store.state.trail[before:]
    on_original = [
        (e.action, e.actor, e.on_behalf_of, e.status_before, e.status_after)
        for e in added
        if e.rollout_id == rid
    ]
    assert on_original == [
        ("rollout.rollback", "token:op", None, "running (paused)", "aborted"),
        ("rollout.aborted", "scheduler", "token:op", "running (paused)", "aborted"),
        ("rollout.rollback_started", "scheduler", "token:op", "aborted", "aborted"),
    ]
    command = next(e for e in added if e.action == "rollout.rollback")
    assert command.detail is not None
    assert command.detail["rollback_id"] == str(back)
    started = next(e for e in added if e.action == "rollout.rollback_started")
    assert started.detail == {"attempt": 1, "rollback_id": str(back)}
    # The rollback's own start, acting for the same operator.
    assert [a for a, *_ in brief(world, back)] == [
        "rollout.started",
        "rollout.wave_started",
    ]
    assert {e[2] for e in brief(world, back)} == {"token:op"}
    assert world.r(back).started_by == "token:op"


async def test_a_refused_rollback_is_recorded_as_rejected(world: World) -> None:
    fleet(world)
    rid = world.rollout(devices=4, waves=2)
    await world.send(rollback_cmd(rid))  # a draft does not accept it
    assert brief(world, rid) == [
        ("rollout.rollback", "token:op", None, "draft", "draft", "rejected")
    ]
    assert rollbacks(world, rid) == []
