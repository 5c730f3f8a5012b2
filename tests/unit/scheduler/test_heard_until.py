"""The engine's heard-until watermark: what the timer may judge after a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from xdp47_common.rollout import NOTHING_HEARD
from xdp47_scheduler.engine import RolloutEngine
from xdp47_scheduler.heartbeats import DeviceHeartbeatState, HeartbeatWriteResult
from xdp47_scheduler.service import Scheduler
from xdp47_scheduler.settings import SchedulerSettings

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def engine(drained: list[bool] | None) -> tuple[RolloutEngine, Clock]:
    clock = Clock()
    answers = iter(drained or [])

    async def probe() -> bool:
        return next(answers)

    e = RolloutEngine(
        cast(Any, None),  # the watermark touches no database
        cast(Any, None),
        cast(Any, None),
        clock=clock,
        drained=None if drained is None else probe,
    )
    return e, clock


def batch(*last_seen: datetime) -> HeartbeatWriteResult:
    return HeartbeatWriteResult(
        changed=tuple(
            DeviceHeartbeatState("t", f"d{i}", seen) for i, seen in enumerate(last_seen)
        ),
        unknown=0,
        stale=0,
        superseded=0,
    )


async def test_a_restarted_scheduler_has_heard_nothing():
    e, _ = engine([])
    assert e.heard.value() == NOTHING_HEARD


async def test_committed_heartbeats_move_the_watermark_to_their_ingest_time():
    e, clock = engine([])
    clock.now = T0 + timedelta(seconds=30)
    # A backlog from the outage: accepted 20 s ago, committed now.
    await e.after_commit(batch(T0 + timedelta(seconds=8), T0 + timedelta(seconds=10)))
    assert e.heard.value() == T0 + timedelta(seconds=10)


async def test_a_drained_queue_counts_once_the_next_probe_confirms_it():
    e, clock = engine([True, True, False, True])
    await e.heard.probe(clock.now)
    assert e.heard.value() == NOTHING_HEARD  # a delivery may be in transit
    clock.now += timedelta(seconds=1)
    await e.heard.probe(clock.now)
    assert e.heard.value() == T0
    clock.now += timedelta(seconds=1)
    await e.heard.probe(clock.now)  # not drained: no candidate
    clock.now += timedelta(seconds=1)
    await e.heard.probe(clock.now)  # drained again, not confirmed yet
    assert e.heard.value() == T0


async def test_without_a_probe_the_engine_counts_as_caught_up():
    e, _ = engine(None)
    assert e.heard.value() is None


async def test_the_service_probe_needs_an_empty_queue_and_an_idle_consumer():
    class Depth:
        messages = 0

    class Bus:
        topology = cast(Any, None)
        depth = Depth()

        async def queue_depth(self, name: str) -> Depth:
            return self.depth

    class Consumer:
        idle = True

    s = Scheduler(SchedulerSettings(), bus=cast(Any, Bus()))
    s.topology = cast(Any, type("T", (), {"heartbeats_queue": "hb"})())
    assert not await s._heartbeats_drained()  # no consumer yet
    consumer = Consumer()
    s._heartbeats = cast(Any, consumer)
    assert await s._heartbeats_drained()
    Bus.depth.messages = 3
    assert not await s._heartbeats_drained()
    Bus.depth.messages = 0
    consumer.idle = False
    assert not await s._heartbeats_drained()
