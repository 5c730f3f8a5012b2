"""Steering on the in-memory store: pause/resume, approval gates, four-eyes and
promote, applied once through the command path and respected by the timer."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from prometheus_client import REGISTRY

from tests.unit.scheduler.test_engine import (
    DEFAULTS,
    TENANT,
    World,
    commands,
    start,
    world,
)
from xdp47_common.messages import (
    AbortRollout,
    ApproveRollout,
    PauseRollout,
    PromoteRollout,
    ResumeRollout,
)
from xdp47_common.rollout import EffectivePolicy, RolloutHold, RolloutStatus

__all__ = ["world"]  # the fixture, shared with test_engine


def policy(**changes: Any) -> dict[str, Any]:
    return EffectivePolicy.model_validate(DEFAULTS.model_dump() | changes).model_dump()


def pause(rid: uuid.UUID, by: str = "op") -> PauseRollout:
    return PauseRollout(tenant=TENANT, rollout_id=rid, requested_by=by)


def resume(rid: uuid.UUID, by: str = "op") -> ResumeRollout:
    return ResumeRollout(tenant=TENANT, rollout_id=rid, requested_by=by)


def approve(rid: uuid.UUID, by: str) -> ApproveRollout:
    return ApproveRollout(tenant=TENANT, rollout_id=rid, requested_by=by)


def promote(rid: uuid.UUID) -> PromoteRollout:
    return PromoteRollout(tenant=TENANT, rollout_id=rid, requested_by="op")


async def test_a_paused_rollout_starts_no_wave_until_resumed(world: World) -> None:
    rid = world.rollout(devices=4, waves=2)
    await world.send(start(rid))
    await world.send(pause(rid))
    r = world.r(rid)
    assert (r.status, r.hold, r.held_since) == (
        RolloutStatus.RUNNING,
        RolloutHold.PAUSED,
        world.clock.now,
    )
    # Devices already told keep going: their targets settle while paused ...
    await world.report(*sorted(world.targets(rid, 1)))
    assert set(world.targets(rid, 1).values()) == {"applied"}
    # ... but no gate moves the rollout, not even the timer's.
    world.clock.now += timedelta(seconds=30)
    await world.engine.tick()
    assert world.r(rid).current_wave == 1
    assert set(world.targets(rid, 2).values()) == {"pending"}
    assert world.events.names() == ["started", "wave_started", "paused"]

    await world.send(resume(rid))
    r = world.r(rid)
    assert (r.hold, r.held_since, r.current_wave) == (None, None, 2)
    assert world.events.names()[3:] == ["resumed", "wave_finished", "wave_started"]
    assert (r.reason or "").startswith("wave 1: 2 of 2 succeeded")


async def test_pause_and_resume_repeat_harmlessly_and_each_cycle_is_an_event(
    world: World,
) -> None:
    rid = world.rollout(devices=2, waves=1)
    await world.send(start(rid))
    no_ops = commands("pause", "no_op")
    await world.send(pause(rid))
    await world.send(pause(rid))
    assert commands("pause", "no_op") == no_ops + 1
    await world.send(resume(rid))
    resumed_no_ops = commands("resume", "no_op")
    await world.send(resume(rid))
    assert commands("resume", "no_op") == resumed_no_ops + 1
    await world.send(pause(rid))
    await world.send(resume(rid))
    steering = [e for e in world.events.published if e.event in ("paused", "resumed")]
    assert [e.event for e in steering] == ["paused", "resumed", "paused", "resumed"]
    # Distinct message ids: a consumer deduplicating by id keeps all four.
    assert len({e.message_id for e in steering}) == 4


async def test_the_deadline_does_not_run_while_paused(world: World) -> None:
    rid = world.rollout(devices=2, waves=1)
    await world.send(start(rid))
    deadline = DEFAULTS.wave_deadline_seconds
    world.clock.now += timedelta(seconds=deadline - 100)
    await world.send(pause(rid))
    world.clock.now += timedelta(seconds=deadline * 3)  # long past the deadline
    await world.engine.tick()
    assert set(world.targets(rid).values()) == {"assigned"}
    await world.send(resume(rid))
    # The wave had 100 s left when paused, and has them again.
    world.clock.now += timedelta(seconds=99)
    await world.engine.tick()
    assert world.r(rid).status is RolloutStatus.RUNNING
    world.clock.now += timedelta(seconds=2)
    await world.engine.tick()
    assert world.r(rid).status is RolloutStatus.FAILED
    assert set(world.targets(rid).values()) == {"failed"}


async def test_the_grace_does_not_run_while_paused(world: World) -> None:
    rid = world.rollout(devices=4, waves=2, effective_policy=policy(grace_seconds=100))
    await world.send(start(rid))
    await world.report(*sorted(world.targets(rid, 1)))
    world.clock.now += timedelta(seconds=40)
    await world.send(pause(rid))
    world.clock.now += timedelta(seconds=500)
    await world.send(resume(rid))
    assert world.r(rid).current_wave == 1  # 60 s of grace left
    world.clock.now += timedelta(seconds=59)
    await world.engine.tick()
    assert world.r(rid).current_wave == 1
    world.clock.now += timedelta(seconds=2)
    await world.engine.tick()
    assert world.r(rid).current_wave == 2


async def test_abort_ends_a_paused_rollout_and_lifts_the_hold(world: World) -> None:
    rid = world.rollout(devices=2, waves=1)
    await world.send(start(rid))
    await world.send(pause(rid))
    await world.send(AbortRollout(tenant=TENANT, rollout_id=rid))
    r = world.r(rid)
    assert (r.status, r.hold, r.held_since) == (RolloutStatus.ABORTED, None, None)


async def test_an_approval_gate_holds_the_next_wave_until_approved(
    world: World,
) -> None:
    rid = world.rollout(
        devices=6, waves=3, effective_policy=policy(approval_before_waves=[2])
    )
    await world.send(start(rid))
    await world.report(*sorted(world.targets(rid, 1)))
    r = world.r(rid)
    assert (r.status, r.hold, r.current_wave) == (
        RolloutStatus.RUNNING,
        RolloutHold.AWAITING_APPROVAL,
        1,
    )
    assert (r.reason or "").endswith("wave 2 waits for approval")
    waiting = world.events.published[-1]
    assert (waiting.event, waiting.wave) == ("awaiting_approval", 2)
    world.clock.now += timedelta(seconds=DEFAULTS.wave_deadline_seconds * 2)
    await world.engine.tick()
    assert world.r(rid).current_wave == 1
    assert set(world.targets(rid, 2).values()) == {"pending"}
    # Resume and promote do not lift an approval gate.
    rejected = commands("resume", "rejected")
    await world.send(resume(rid))
    assert commands("resume", "rejected") == rejected + 1
    assert world.r(rid).hold is RolloutHold.AWAITING_APPROVAL

    await world.send(approve(rid, "token:approver"))
    r = world.r(rid)
    assert (r.hold, r.current_wave) == (None, 2)
    assert world.events.names()[-2:] == ["approved", "wave_started"]
    assert set(world.targets(rid, 2).values()) == {"assigned"}
    # Wave 3 needs no approval: it follows wave 2 by itself.
    await world.report(*sorted(world.targets(rid, 2)))
    assert world.r(rid).current_wave == 3


async def test_four_eyes_refuses_the_starter_as_approver(world: World) -> None:
    world.store.state.four_eyes.add(TENANT)
    rid = world.rollout(
        devices=4, waves=2, effective_policy=policy(approval_before_waves=[2])
    )
    await world.send(start(rid))  # requested_by "op"
    assert world.r(rid).started_by == "op"
    await world.report(*sorted(world.targets(rid, 1)))
    refused = commands("approve", "refused")
    await world.send(approve(rid, "op"))
    assert commands("approve", "refused") == refused + 1
    assert world.r(rid).hold is RolloutHold.AWAITING_APPROVAL
    await world.send(approve(rid, "token:second"))
    assert (world.r(rid).hold, world.r(rid).current_wave) == (None, 2)


async def test_without_four_eyes_the_starter_may_approve(world: World) -> None:
    rid = world.rollout(
        devices=4, waves=2, effective_policy=policy(approval_before_waves=[2])
    )
    await world.send(start(rid))
    await world.report(*sorted(world.targets(rid, 1)))
    await world.send(approve(rid, "op"))
    assert world.r(rid).current_wave == 2


async def test_promote_judges_a_wave_in_its_grace_now(world: World) -> None:
    rid = world.rollout(devices=4, waves=2, effective_policy=policy(grace_seconds=300))
    await world.send(start(rid))
    await world.report(*sorted(world.targets(rid, 1)))
    assert world.r(rid).current_wave == 1  # done, waiting out the grace
    await world.send(promote(rid))
    assert world.r(rid).current_wave == 2
    names = world.events.names()
    assert names[names.index("promoted") :] == [
        "promoted",
        "wave_finished",
        "wave_started",
    ]
    # Wave 2 is in its grace again: a new wave clears the mark.
    assert world.r(rid).grace_skipped is False


async def test_a_promoted_wave_passes_when_its_last_device_reports(
    world: World,
) -> None:
    rid = world.rollout(devices=4, waves=2, effective_policy=policy(grace_seconds=300))
    await world.send(start(rid))
    first, second = sorted(world.targets(rid, 1))
    await world.report(first)
    await world.send(promote(rid))
    assert world.r(rid).grace_skipped is True
    assert world.r(rid).current_wave == 1
    await world.report(second)
    assert world.r(rid).current_wave == 2


async def test_promote_without_a_grace_left_is_rejected(world: World) -> None:
    rid = world.rollout(devices=4, waves=2)  # grace 0
    await world.send(start(rid))
    rejected = commands("promote", "rejected")
    await world.send(promote(rid))
    assert commands("promote", "rejected") == rejected + 1
    assert "promoted" not in world.events.names()


async def test_the_timer_counts_held_rollouts(world: World) -> None:
    rid = world.rollout(devices=2, waves=1)
    await world.send(start(rid))
    await world.send(pause(rid))
    await world.engine.tick()
    held = REGISTRY.get_sample_value(
        "xdp47_scheduler_rollouts_held", {"hold": "paused"}
    )
    assert held == 1
