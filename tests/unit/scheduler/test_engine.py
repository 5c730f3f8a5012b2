"""The rollout engine on the in-memory store: commands, gates, retries and crashes.

No PostgreSQL: ``memory_store.MemoryRolloutStore`` implements the port. Devices
report by changing the store's devices and going through the engine's heartbeat
hooks, as a heartbeat batch does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from prometheus_client import REGISTRY

from tests.unit.scheduler.memory_store import (
    Crash,
    Device,
    MemoryRolloutStore,
    Race,
    Rollout,
)
from xdp47_common.bus import PoisonMessage
from xdp47_common.messages import (
    AbortRollout,
    RetryRollout,
    RolloutCommand,
    RolloutEvent,
    StartRollout,
)
from xdp47_common.rollout import EffectivePolicy, RolloutStatus
from xdp47_scheduler import gates
from xdp47_scheduler.engine import RolloutEngine

TENANT = "t"
ARTIFACT = uuid.uuid4()
DEFAULTS = EffectivePolicy(
    require_ok=True,
    skip_offline=True,
    grace_seconds=0,
    min_success_ratio=1.0,
    max_failures_per_wave=0,
    abort_on_zero_eligible=True,
    wave_deadline_seconds=600,
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Events:
    def __init__(self) -> None:
        self.published: list[RolloutEvent] = []

    async def publish(self, events: Sequence[RolloutEvent]) -> None:
        self.published.extend(events)

    def names(self) -> list[str]:
        return [e.event for e in self.published]


@dataclass(frozen=True)
class Changed:
    """What the engine reads of a device a heartbeat batch changed."""

    tenant: str
    device_id: str
    last_seen: datetime
    assigned: bool = True
    rollout_id: uuid.UUID | None = None
    # The target as the heartbeat write found it (the analysis's cohort).
    state: str | None = None
    wave: int | None = None
    analysed_window: int | None = None


@dataclass(frozen=True)
class Batch:
    changed: tuple[Changed, ...]
    beats: dict[tuple[str, str], Any] = field(default_factory=dict)


@dataclass
class World:
    store: MemoryRolloutStore
    engine: RolloutEngine
    events: Events
    clock: Clock

    def rollout(self, devices: int = 4, waves: int = 2, **kw: Any) -> uuid.UUID:
        for i in range(devices):
            key = (TENANT, f"d{i}")
            self.store.state.devices.setdefault(key, Device(TENANT, f"d{i}"))
        rid = uuid.uuid4()
        self.store.state.rollouts[rid] = Rollout(rid, TENANT, ARTIFACT, waves, **kw)
        return rid

    def r(self, rid: uuid.UUID) -> Rollout:
        return self.store.state.rollouts[rid]

    def targets(self, rid: uuid.UUID, wave: int | None = None) -> dict[str, str]:
        return {
            d: t.state
            for (r, d), t in self.store.state.targets.items()
            if r == rid and (wave is None or t.wave == wave)
        }

    async def send(self, command: RolloutCommand) -> None:
        await self.engine.handle_command(command)
        await self.engine.drain()

    async def report(self, *device_ids: str, ok: bool = True) -> None:
        """These devices run the artifact (or failed to apply it): one batch."""
        for d in device_ids:
            device = self.store.state.devices[(TENANT, d)]
            if ok:
                device.artifact = ARTIFACT
            else:
                device.failed_artifact = ARTIFACT
        batch = cast(
            Any, Batch(tuple(Changed(TENANT, d, self.clock()) for d in device_ids))
        )
        await self.engine.after_write(None, batch)
        await self.engine.after_commit(batch)
        await self.engine.drain()


@pytest.fixture
def world() -> World:
    clock = Clock()
    store = MemoryRolloutStore(clock)
    events = Events()
    engine = RolloutEngine(store, DEFAULTS, events, clock=clock)
    return World(store, engine, events, clock)


def commands(kind: str, result: str) -> float:
    value = REGISTRY.get_sample_value(
        "xdp47_scheduler_commands_total", {"type": kind, "result": result}
    )
    return value or 0.0


def start(rid: uuid.UUID) -> StartRollout:
    return StartRollout(tenant=TENANT, rollout_id=rid, requested_by="op")


async def test_start_plans_the_waves_and_assigns_wave_one(world: World) -> None:
    rid = world.rollout(devices=4, waves=2)
    await world.send(start(rid))
    r = world.r(rid)
    assert (r.status, r.attempt, r.current_wave) == (RolloutStatus.RUNNING, 1, 1)
    assert sorted(world.targets(rid, 1).values()) == ["assigned", "assigned"]
    assert sorted(world.targets(rid, 2).values()) == ["pending", "pending"]
    assert world.events.names() == ["started", "wave_started"]
    assert r.effective_policy == DEFAULTS.model_dump()


async def test_gates_advance_wave_by_wave_to_completed(world: World) -> None:
    rid = world.rollout(devices=4, waves=2)
    await world.send(start(rid))
    first = sorted(world.targets(rid, 1))
    await world.report(first[0])
    assert world.r(rid).current_wave == 1  # one of two: the gate waits
    await world.report(first[1])
    assert world.r(rid).current_wave == 2
    assert sorted(world.targets(rid, 2).values()) == ["assigned", "assigned"]
    await world.report(*sorted(world.targets(rid, 2)))
    r = world.r(rid)
    assert r.status is RolloutStatus.COMPLETED
    assert r.reason == "all 2 waves passed"
    assert world.events.names()[-2:] == ["wave_finished", "completed"]
    assert set(world.targets(rid).values()) == {"applied"}


async def test_a_failed_device_fails_the_rollout_and_retry_finishes_it(
    world: World,
) -> None:
    rid = world.rollout(devices=4, waves=2)
    await world.send(start(rid))
    bad, good = sorted(world.targets(rid, 1))
    await world.report(good)
    await world.report(bad, ok=False)
    assert world.r(rid).status is RolloutStatus.FAILED
    assert world.targets(rid, 1)[bad] == "failed"

    # The device is fixed; retry runs a second attempt over what did not apply.
    world.store.state.devices[(TENANT, bad)].failed_artifact = None
    await world.send(RetryRollout(tenant=TENANT, rollout_id=rid))
    r = world.r(rid)
    assert (r.status, r.attempt, r.current_wave) == (RolloutStatus.RUNNING, 2, 1)
    assert world.targets(rid, 1) == {bad: "assigned", good: "applied"}
    await world.report(bad)
    assert world.r(rid).current_wave == 2
    await world.report(*sorted(world.targets(rid, 2)))
    assert world.r(rid).status is RolloutStatus.COMPLETED


async def test_abort_releases_the_devices_and_a_repeat_is_a_no_op(
    world: World,
) -> None:
    rid = world.rollout(devices=4, waves=2)
    await world.send(start(rid))
    await world.send(AbortRollout(tenant=TENANT, rollout_id=rid, reason="bad build"))
    r = world.r(rid)
    assert r.status is RolloutStatus.ABORTED
    assert r.reason == "aborted by operator: bad build"
    assert set(world.targets(rid).values()) == {"skipped"}
    assert not any(t.active for t in world.store.state.targets.values())
    published = len(world.events.published)

    no_ops = commands("abort", "no_op")
    await world.send(AbortRollout(tenant=TENANT, rollout_id=rid))
    assert commands("abort", "no_op") == no_ops + 1
    assert world.r(rid).reason == "aborted by operator: bad build"
    assert len(world.events.published) == published


async def test_a_redelivered_command_has_no_second_effect(world: World) -> None:
    rid = world.rollout(devices=4, waves=2)
    command = start(rid)
    await world.send(command)
    duplicates = commands("start", "duplicate")
    await world.send(command)
    assert commands("start", "duplicate") == duplicates + 1
    assert world.events.names() == ["started", "wave_started"]
    assert len(world.store.state.runs) == 1


@pytest.mark.parametrize("step", ["claim", "lock", "write_plan", "apply", "start_wave"])
async def test_a_crash_before_the_commit_leaves_nothing_and_redelivery_applies(
    world: World, step: str
) -> None:
    rid = world.rollout(devices=4, waves=2)
    command = start(rid)
    world.store.crash_at = step
    with pytest.raises(Crash):
        await world.send(command)
    # Rolled back: no inbox claim, no plan, no run, nothing published.
    assert world.r(rid).status is RolloutStatus.DRAFT
    assert not world.store.state.inbox
    assert not world.store.state.targets
    assert not world.store.state.runs
    assert world.events.published == []

    await world.send(command)  # the broker redelivers the unacked command
    assert world.r(rid).status is RolloutStatus.RUNNING
    assert world.events.names() == ["started", "wave_started"]
    assert len(world.store.state.runs) == 1


async def test_a_crash_after_the_start_leaves_the_follow_up_to_the_timer(
    world: World,
) -> None:
    rid = world.rollout(devices=4, waves=2)
    world.store.crash_at = "assign_chunk"
    await world.send(start(rid))  # committed; its follow-up task dies
    assert world.r(rid).status is RolloutStatus.RUNNING
    assert sorted(world.targets(rid, 1).values()) == ["pending", "pending"]

    await world.engine.tick()
    await world.engine.drain()
    assert sorted(world.targets(rid, 1).values()) == ["assigned", "assigned"]
    await world.report(*sorted(world.targets(rid, 1)))
    assert world.r(rid).current_wave == 2


async def test_a_race_is_retried_in_a_new_transaction(world: World) -> None:
    rid = world.rollout(devices=2, waves=1)
    world.store.crash_at, world.store.crash_with = "apply", Race
    await world.send(start(rid))
    assert world.r(rid).status is RolloutStatus.RUNNING
    assert world.events.names() == ["started", "wave_started"]


async def test_offline_devices_are_skipped_and_a_wave_of_them_passes(
    world: World,
) -> None:
    rid = world.rollout(devices=2, waves=1)
    for d in world.store.state.devices.values():
        d.online = False
    await world.send(start(rid))
    # Every device skipped: the wave had devices and lost them all.
    r = world.r(rid)
    assert r.status is RolloutStatus.ABORTED
    assert set(world.targets(rid).values()) == {"skipped"}


async def test_the_timer_times_out_a_wave_past_its_deadline(world: World) -> None:
    rid = world.rollout(devices=2, waves=1)
    await world.send(start(rid))
    world.clock.now += timedelta(seconds=DEFAULTS.wave_deadline_seconds + 1)
    await world.engine.tick()
    r = world.r(rid)
    assert r.status is RolloutStatus.FAILED
    assert set(world.targets(rid).values()) == {"failed"}
    assert "wave_timed_out" in world.events.names()


async def test_zero_eligible_ends_the_rollout_at_start(world: World) -> None:
    rid = world.rollout(devices=2, waves=2, selector={"region": "mars"})
    await world.send(start(rid))
    r = world.r(rid)
    assert r.status is RolloutStatus.ABORTED
    assert r.reason == "no eligible devices (0 matched the selector)"


async def test_a_start_of_a_finished_rollout_is_rejected(world: World) -> None:
    rid = world.rollout(devices=2, waves=1)
    world.r(rid).status = RolloutStatus.COMPLETED
    rejected = commands("start", "rejected")
    await world.send(start(rid))
    assert commands("start", "rejected") == rejected + 1
    assert world.r(rid).status is RolloutStatus.COMPLETED
    # Claimed all the same: a redelivery is a duplicate, not judged again.
    assert len(world.store.state.inbox) == 1


async def test_a_command_for_another_tenants_rollout_is_poison(world: World) -> None:
    rid = world.rollout(devices=2, waves=1)
    with pytest.raises(PoisonMessage):
        await world.send(StartRollout(tenant="other", rollout_id=rid))
    assert world.r(rid).status is RolloutStatus.DRAFT
    assert not world.store.state.inbox


async def test_the_heartbeat_hooks_do_not_wait_for_the_gates(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that completes a rollout returns from ``after_commit`` while the
    gate evaluation it asked for still runs (the consumer goes on with the next
    batch); the evaluation then completes the rollout, once."""
    rid = world.rollout(devices=2, waves=1)
    await world.send(start(rid))
    devices = sorted(world.targets(rid, 1))
    release = asyncio.Event()
    entered = asyncio.Event()
    evaluate = gates.evaluate

    async def held(*args: Any, **kwargs: Any) -> None:
        entered.set()
        await release.wait()
        await evaluate(*args, **kwargs)

    monkeypatch.setattr(gates, "evaluate", held)
    for d in devices:
        world.store.state.devices[(TENANT, d)].artifact = ARTIFACT
    batch = cast(Any, Batch(tuple(Changed(TENANT, d, world.clock()) for d in devices)))
    await world.engine.after_write(None, batch)
    await world.engine.after_commit(batch)
    await entered.wait()
    assert world.r(rid).status is RolloutStatus.RUNNING  # judged, not yet decided
    # A second batch naming the same rollout while its evaluation is held.
    await world.engine.after_write(None, batch)
    await world.engine.after_commit(batch)
    release.set()
    await world.engine.drain()
    assert world.r(rid).status is RolloutStatus.COMPLETED
    assert world.events.names().count("completed") == 1
