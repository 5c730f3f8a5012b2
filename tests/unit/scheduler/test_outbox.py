"""The outbox on the in-memory store: events exist exactly when their decision
committed, and the relay publishes each committed one."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.scheduler.memory_outbox import MemoryOutbox
from tests.unit.scheduler.memory_store import Crash, MemoryRolloutStore
from tests.unit.scheduler.test_engine import DEFAULTS, Clock, Events, World, start
from xdp47_common.bus import PublishFailed
from xdp47_common.messages import RolloutEvent
from xdp47_common.messages.envelope import Envelope, PreparedEnvelope
from xdp47_common.topology import Topology
from xdp47_scheduler.engine import RolloutEngine
from xdp47_scheduler.relay import OutboxRelay


@pytest.fixture
def world() -> World:
    clock = Clock()
    store = MemoryRolloutStore(clock)
    events = Events()
    return World(
        store, RolloutEngine(store, DEFAULTS, events, clock=clock), events, clock
    )


class Recorder:
    def __init__(self, fail_after: int | None = None) -> None:
        self.sent: list[tuple[str, str, RolloutEvent]] = []
        self.fail_after = fail_after
        self.two_sent = asyncio.Event()

    async def publish(
        self, exchange: str, routing_key: str, envelope: Envelope | PreparedEnvelope
    ) -> None:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise PublishFailed("no confirm")
        assert isinstance(envelope, PreparedEnvelope)
        event = RolloutEvent.model_validate_json(envelope.body)
        assert event.message_id == envelope.message_id
        self.sent.append((exchange, routing_key, event))
        if len(self.sent) >= 2:
            self.two_sent.set()


def relay_of(world: World, publisher: Recorder) -> OutboxRelay:
    return OutboxRelay(
        MemoryOutbox(world.store),
        publisher,
        Topology("ns"),
        clock=world.clock,
        sweep=1.0,
        retention=0.0,
    )


async def test_the_deciding_transaction_writes_its_events(world: World) -> None:
    rid = world.rollout(devices=4, waves=2)
    await world.send(start(rid))
    written = [e.event for e in world.store.state.outbox]
    assert [e.event for e in written] == ["started", "wave_started"]
    assert written == world.events.published  # told only after the commit


async def test_a_crash_before_the_commit_leaves_no_event(world: World) -> None:
    rid = world.rollout(devices=4, waves=2)
    world.store.crash_at = "enqueue_events"
    with pytest.raises(Crash):
        await world.send(start(rid))
    assert world.store.state.outbox == []
    assert world.events.published == []
    assert world.r(rid).status.value == "draft"  # the decision went with them


async def test_the_relay_publishes_each_committed_event_once(world: World) -> None:
    rid = world.rollout(devices=4, waves=2)
    await world.send(start(rid))
    publisher = Recorder()
    relay = relay_of(world, publisher)
    assert await relay.drain() == 2
    assert await relay.drain() == 0  # marked sent
    keys = [(x, k, e.event) for x, k, e in publisher.sent]
    assert keys == [
        ("ns.xdp47.events", "rollout.t.started", "started"),
        ("ns.xdp47.events", "rollout.t.wave_started", "wave_started"),
    ]
    assert [e for _, _, e in publisher.sent] == world.events.published


async def test_an_unconfirmed_publish_leaves_the_rest_unsent(world: World) -> None:
    rid = world.rollout(devices=4, waves=2)
    await world.send(start(rid))
    relay = relay_of(world, Recorder(fail_after=1))
    with pytest.raises(PublishFailed):
        await relay.drain()
    assert [e.sent for e in world.store.state.outbox] == [True, False]
    publisher = Recorder()
    assert await relay_of(world, publisher).drain() == 1
    assert [e.event for _, _, e in publisher.sent] == ["wave_started"]


async def test_the_running_relay_is_woken_by_a_nudge_not_the_sweep(
    world: World,
) -> None:
    publisher = Recorder()
    relay = OutboxRelay(
        MemoryOutbox(world.store),
        publisher,
        Topology("ns"),
        clock=world.clock,
        sweep=3600.0,  # the sweep alone would never come within the test
        retention=3600.0,
    )
    task = asyncio.create_task(relay.run())
    try:
        rid = world.rollout(devices=4, waves=2)
        await world.send(start(rid))
        relay.nudge()  # what the engine's sink does after the commit
        await asyncio.wait_for(publisher.two_sent.wait(), 10)
    finally:
        relay.stop()
        await asyncio.wait_for(task, 10)
    assert [e.event for _, _, e in publisher.sent] == ["started", "wave_started"]
