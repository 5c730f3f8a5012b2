"""The bus contract: one suite, run against ``InMemoryBus`` and RabbitMQ.

What the services rely on: idempotent topology, confirmed publishing that keeps
the message id and type, topic routing like RabbitMQ's, acks only after the
handler returned, a failing message dead-lettered after the delivery limit, poison
dead-lettered without stopping the rest, and unacked messages surviving a
consumer that stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from tenacity import AsyncRetrying, stop_after_delay, wait_fixed

from tests.contract.bus.conftest import Harness
from tests.support.waiting import until
from xdp47_common.bus import ConsumerOptions, Delivery, PublishFailed
from xdp47_common.clock import utcnow
from xdp47_common.messages import (
    Heartbeat,
    HeartbeatBatch,
    HeartbeatReceived,
    RolloutEvent,
    decode_heartbeats,
)
from xdp47_common.topology import DELIVERY_LIMIT, Topology


def _hb(seq: int, tenant: str = "acme") -> HeartbeatReceived:
    return HeartbeatReceived(
        tenant=tenant,
        heartbeat=Heartbeat(seq=seq, device_id="dev-1", received_at=utcnow()),
    )


async def _eventually(check: Callable[[], Any], within: float = 20.0) -> None:
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(within), wait=wait_fixed(0.05), reraise=True
    ):
        with attempt:
            assert check()


async def _send(h: Harness, *messages: HeartbeatReceived) -> None:
    for m in messages:
        await h.bus.publish(h.topology.telemetry, Topology.heartbeat_key(m.tenant), m)


async def _dead(h: Harness, queue: str, count: int) -> list[bytes]:
    """Drain ``count`` messages from ``queue``'s dead queue."""
    got: list[bytes] = []

    async def handle(batch: list[bytes]) -> None:
        got.extend(batch)

    consumer = h.bus.batch_consumer(
        h.topology.dead_queue(queue),
        bytes,
        handle,
        ConsumerOptions(max_batch=10, max_wait_ms=10),
    )
    await consumer.start()
    try:
        await _eventually(lambda: len(got) >= count, within=40)
    finally:
        await consumer.stop()
    return got


async def test_topology_is_idempotent(harness: Harness) -> None:
    await harness.bus.start()
    second = await harness.another()
    await second.start()
    for queue, _, _ in harness.topology.work_queues:
        for name in (queue, harness.topology.dead_queue(queue)):
            depth = await harness.bus.queue_depth(name)
            assert (depth.messages, depth.consumers) == (0, 0)
    assert harness.bus.is_ready
    with pytest.raises(LookupError):
        await harness.bus.queue_depth(f"{harness.topology.namespace}.missing")


async def test_each_look_at_a_queue_is_the_brokers_answer_of_now(
    harness: Harness,
) -> None:
    """Looks at a queue follow what it holds, before and after a look at a
    missing queue (which the broker answers by closing the channel)."""
    await harness.bus.start()
    queue = harness.topology.heartbeats_queue

    async def holds(n: int) -> bool:
        return (await harness.bus.queue_depth(queue)).messages == n

    assert await holds(0)
    await _send(harness, _hb(1))
    await until(lambda: holds(1), what="the queue holds 1")
    with pytest.raises(LookupError):
        await harness.bus.queue_depth(f"{harness.topology.namespace}.missing")
    assert await holds(1)
    await _send(harness, _hb(2))
    await until(lambda: holds(2), what="the queue holds 2")


async def test_publish_to_an_undeclared_exchange_fails(harness: Harness) -> None:
    with pytest.raises(PublishFailed):
        await harness.bus.publish("no.such.exchange", "x", _hb(1))


async def test_publish_then_consume_keeps_id_and_type(harness: Harness) -> None:
    seen: list[Delivery] = []

    async def on_event(d: Delivery) -> None:
        seen.append(d)

    sub = await harness.bus.subscribe(harness.topology.telemetry, on_event)
    await sub.bind("heartbeat.*")
    handled: list[HeartbeatReceived] = []

    async def handle(batch: list[HeartbeatReceived]) -> None:
        handled.extend(batch)

    consumer = harness.bus.batch_consumer(
        harness.topology.heartbeats_queue, HeartbeatReceived.model_validate_json, handle
    )
    await consumer.start()
    sent = _hb(1)
    try:
        await _send(harness, sent)
        await _eventually(lambda: handled and seen)
    finally:
        await consumer.stop()
        await sub.close()
    assert [m.message_id for m in handled] == [sent.message_id]
    assert handled[0] == sent
    assert seen[0].message_id == str(sent.message_id)
    assert seen[0].type == sent.type
    assert seen[0].routing_key == "heartbeat.acme"


async def test_single_and_batched_heartbeats_share_the_queue(
    harness: Harness,
) -> None:
    """Ingest's micro-batches and single heartbeats (from an older ingest) travel
    the same queue and decode as batches, in order."""
    handled: list[HeartbeatBatch] = []

    async def handle(batch: list[HeartbeatBatch]) -> None:
        handled.extend(batch)

    consumer = harness.bus.batch_consumer(
        harness.topology.heartbeats_queue, decode_heartbeats, handle
    )
    single = _hb(1)
    batch = HeartbeatBatch(
        tenant="acme",
        heartbeats=[
            Heartbeat(seq=s, device_id=f"dev-{s}", received_at=utcnow()) for s in (2, 3)
        ],
    )
    await consumer.start()
    try:
        await _send(harness, single)
        await harness.bus.publish(
            harness.topology.telemetry, Topology.heartbeat_key("acme"), batch
        )
        await _eventually(lambda: len(handled) == 2)
    finally:
        await consumer.stop()
    assert [(m.message_id, m.tenant) for m in handled] == [
        (single.message_id, "acme"),
        (batch.message_id, "acme"),
    ]
    assert [[b.seq for b in m.heartbeats] for m in handled] == [[1], [2, 3]]
    assert handled[0].heartbeats[0] == single.heartbeat


async def test_topic_routing(harness: Harness) -> None:
    got: list[str] = []

    async def on_event(d: Delivery) -> None:
        got.append(d.routing_key or "")

    t = harness.topology
    sub = await harness.bus.subscribe(t.events, on_event)
    await sub.bind(Topology.rollout_event_key("t1", "#"))
    beats = await harness.bus.subscribe(t.telemetry, on_event)
    await beats.bind("heartbeat.*")

    def event(tenant: str) -> RolloutEvent:
        return RolloutEvent(tenant=tenant, rollout_id=_hb(1).message_id, event="x")

    keys = [
        (t.events, "rollout.t1.wave_started"),
        (t.events, "rollout.t1.wave.1.done"),
        (t.events, "rollout.t2.wave_started"),
        (t.events, "device.t1.claimed"),
        (t.telemetry, "heartbeat.acme"),
        (t.telemetry, "heartbeat.acme.extra"),
    ]
    try:
        for exchange, key in keys:
            await harness.bus.publish(exchange, key, event("t1"))
        await harness.bus.publish(t.events, "rollout.t1.last", event("t1"))
        await _eventually(lambda: "rollout.t1.last" in got)
        await sub.unbind(Topology.rollout_event_key("t1", "#"))
        await harness.bus.publish(t.events, "rollout.t1.after_unbind", event("t1"))
        await harness.bus.publish(t.telemetry, "heartbeat.end", event("t1"))
        await _eventually(lambda: "heartbeat.end" in got)
    finally:
        await sub.close()
        await beats.close()
    assert sorted(got) == sorted(
        [
            "rollout.t1.wave_started",
            "rollout.t1.wave.1.done",
            "heartbeat.acme",
            "rollout.t1.last",
            "heartbeat.end",
        ]
    )


async def test_batch_is_acked_only_after_the_handler_returned(
    harness: Harness,
) -> None:
    """Handled messages are not redelivered; a later consumer sees only new ones."""
    handled: list[HeartbeatReceived] = []

    async def handle(batch: list[HeartbeatReceived]) -> None:
        handled.extend(batch)

    queue = harness.topology.heartbeats_queue
    consumer = harness.bus.batch_consumer(
        queue,
        HeartbeatReceived.model_validate_json,
        handle,
        ConsumerOptions(max_batch=10, max_wait_ms=20),
    )
    await consumer.start()
    first = [_hb(i) for i in range(1, 6)]
    try:
        await _send(harness, *first)
        await _eventually(lambda: len(handled) == 5)
        await asyncio.sleep(0)  # let the ack go out before the channel closes
    finally:
        await consumer.stop()
    marker = _hb(99)
    await _send(harness, marker)
    later: list[HeartbeatReceived] = []

    async def handle_later(batch: list[HeartbeatReceived]) -> None:
        later.extend(batch)

    consumer = harness.bus.batch_consumer(
        queue,
        HeartbeatReceived.model_validate_json,
        handle_later,
        ConsumerOptions(max_wait_ms=20),
    )
    await consumer.start()
    try:
        await _eventually(lambda: later)
    finally:
        await consumer.stop()
    assert [m.message_id for m in later] == [marker.message_id]
    assert [m.message_id for m in handled] == [m.message_id for m in first]


async def test_failing_message_is_dead_lettered_after_the_delivery_limit(
    harness: Harness,
) -> None:
    bad, good = _hb(1), _hb(2)
    attempts: dict[str, int] = {}
    committed: list[HeartbeatReceived] = []

    async def handle(batch: list[HeartbeatReceived]) -> None:
        for m in batch:
            attempts[str(m.message_id)] = attempts.get(str(m.message_id), 0) + 1
        if any(m.message_id == bad.message_id for m in batch):
            raise RuntimeError("this one always fails")
        committed.extend(batch)

    queue = harness.topology.heartbeats_queue
    consumer = harness.bus.batch_consumer(
        queue,
        HeartbeatReceived.model_validate_json,
        handle,
        ConsumerOptions(max_batch=10, max_wait_ms=20),
    )
    await _send(harness, bad, good)
    await consumer.start()
    try:
        dead = await _dead(harness, queue, 1)
    finally:
        await consumer.stop()
    assert [HeartbeatReceived.model_validate_json(b).message_id for b in dead] == [
        bad.message_id
    ]
    assert [m.message_id for m in committed] == [good.message_id]
    assert attempts[str(bad.message_id)] >= DELIVERY_LIMIT
    assert (await harness.bus.queue_depth(queue)).messages == 0


async def test_poison_is_dead_lettered_and_the_rest_flows(harness: Harness) -> None:
    t = harness.topology
    good = [_hb(1), _hb(2)]
    handled: list[HeartbeatReceived] = []
    poisoned: list[str] = []

    async def handle(batch: list[HeartbeatReceived]) -> None:
        handled.extend(batch)

    await _send(harness, good[0])
    await harness.raw(t.telemetry, "heartbeat.acme", b"{not json")
    await _send(harness, good[1])
    consumer = harness.bus.batch_consumer(
        t.heartbeats_queue,
        HeartbeatReceived.model_validate_json,
        handle,
        ConsumerOptions(
            max_batch=10,
            max_wait_ms=20,
            on_poison=lambda d, reason: poisoned.append(reason),
        ),
    )
    await consumer.start()
    try:
        await _eventually(lambda: len(handled) == 2 and poisoned)
    finally:
        await consumer.stop()
    assert [m.message_id for m in handled] == [m.message_id for m in good]
    assert poisoned == ["bad_json"]
    assert await _dead(harness, t.heartbeats_queue, 1) == [b"{not json"]


async def test_stop_lets_the_batch_in_progress_commit(harness: Harness) -> None:
    """Graceful shutdown drains: a batch being handled finishes and is acked."""
    started = asyncio.Event()
    release = asyncio.Event()
    handled: list[HeartbeatReceived] = []

    async def slow(batch: list[HeartbeatReceived]) -> None:
        started.set()
        await release.wait()
        handled.extend(batch)

    queue = harness.topology.heartbeats_queue
    sent = [_hb(i) for i in range(1, 4)]
    await _send(harness, *sent)
    consumer = harness.bus.batch_consumer(
        queue,
        HeartbeatReceived.model_validate_json,
        slow,
        ConsumerOptions(max_batch=10, max_wait_ms=20),
    )
    await consumer.start()
    await asyncio.wait_for(started.wait(), 20)
    stopping = asyncio.create_task(consumer.stop())
    await asyncio.sleep(0.2)  # stop() is now waiting for the batch
    assert not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, 20)
    assert len(handled) == 3
    # The broker settles acks asynchronously; poll the depth, bounded.
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(10), wait=wait_fixed(0.05), reraise=True
    ):
        with attempt:
            assert (await harness.bus.queue_depth(queue)).messages == 0


async def test_unacked_messages_survive_a_consumer_stop(harness: Harness) -> None:
    """A consumer stopped mid-batch whose handler does not finish within the
    drain time acks nothing; the next one gets it all."""
    started = asyncio.Event()
    never = asyncio.Event()

    async def stuck(batch: list[HeartbeatReceived]) -> None:
        started.set()
        await never.wait()

    queue = harness.topology.heartbeats_queue
    sent = [_hb(i) for i in range(1, 4)]
    await _send(harness, *sent)
    first = harness.bus.batch_consumer(
        queue,
        HeartbeatReceived.model_validate_json,
        stuck,
        ConsumerOptions(max_batch=10, max_wait_ms=20),
    )
    await first.start()
    try:
        await asyncio.wait_for(started.wait(), 20)
    finally:
        await first.stop()

    handled: list[HeartbeatReceived] = []

    async def handle(batch: list[HeartbeatReceived]) -> None:
        handled.extend(batch)

    other = await harness.another()
    second = other.batch_consumer(
        queue,
        HeartbeatReceived.model_validate_json,
        handle,
        ConsumerOptions(max_batch=10, max_wait_ms=20),
    )
    await second.start()
    try:
        await _eventually(lambda: len(handled) == 3)
    finally:
        await second.stop()
    assert sorted(str(m.message_id) for m in handled) == sorted(
        str(m.message_id) for m in sent
    )


async def test_prefetch_bounds_unacked_deliveries(harness: Harness) -> None:
    """With prefetch 2, a stuck handler holds two messages; the rest wait ready."""
    release = asyncio.Event()
    seen: list[HeartbeatReceived] = []

    async def slow(batch: list[HeartbeatReceived]) -> None:
        seen.extend(batch)
        await release.wait()

    queue = harness.topology.heartbeats_queue
    await _send(harness, *[_hb(i) for i in range(1, 6)])
    consumer = harness.bus.batch_consumer(
        queue,
        HeartbeatReceived.model_validate_json,
        slow,
        ConsumerOptions(max_batch=2, max_wait_ms=20, prefetch=2),
    )
    await consumer.start()
    try:
        await _eventually(lambda: len(seen) == 2)
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(20), wait=wait_fixed(0.1), reraise=True
        ):
            with attempt:
                depth = await harness.bus.queue_depth(queue)
                assert (depth.messages, depth.consumers) == (3, 1)
        assert len(seen) == 2
        release.set()
        await _eventually(lambda: len(seen) == 5)
    finally:
        release.set()
        await consumer.stop()
