"""The batch consumer on the real RabbitMQ: poison, failing handlers, acks."""

from __future__ import annotations

import asyncio
import json

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection
from tenacity import AsyncRetrying, stop_after_delay, wait_fixed

from tests.support.amqp import get_one, message_count
from xdp47_common.adapters.amqp import to_message
from xdp47_common.adapters.amqp_deliveries import AmqpConsumerChannel
from xdp47_common.adapters.batching import BatchConsumer
from xdp47_common.adapters.consumer_metrics import MESSAGES_DEAD_LETTERED
from xdp47_common.bus import ConsumerOptions, Delivery
from xdp47_common.clock import utcnow
from xdp47_common.messages import Heartbeat, HeartbeatReceived
from xdp47_common.topology import DELIVERY_LIMIT, Topology

pytestmark = pytest.mark.integration


def _hb(seq: int) -> HeartbeatReceived:
    return HeartbeatReceived(
        tenant="acme",
        heartbeat=Heartbeat(seq=seq, device_id="dev-1", received_at=utcnow()),
    )


async def _eventually(check, within: float = 15.0) -> None:
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(within), wait=wait_fixed(0.05), reraise=True
    ):
        with attempt:
            check()


async def _publish(channel, topology: Topology, message: aio_pika.Message) -> None:
    exchange = await channel.get_exchange(topology.telemetry)
    await exchange.publish(message, routing_key=topology.heartbeat_key("acme"))


def _dead_count(queue: str, reason: str) -> float:
    return float(MESSAGES_DEAD_LETTERED.labels(queue, reason)._value.get())


async def test_poison_messages_are_dead_lettered_and_others_still_flow(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    channel = await connection.channel(publisher_confirms=True)
    queue = topology.heartbeats_queue
    good = [_hb(1), _hb(2), _hb(3)]
    unknown = json.dumps({**json.loads(good[0].model_dump_json()), "type": "nope"})
    await _publish(channel, topology, to_message(good[0]))
    await _publish(channel, topology, aio_pika.Message(b"{not json"))
    await _publish(channel, topology, aio_pika.Message(unknown.encode()))
    await _publish(channel, topology, aio_pika.Message(b"x" * 5000))
    await _publish(channel, topology, to_message(good[1]))
    await _publish(channel, topology, to_message(good[2]))

    handled: list[HeartbeatReceived] = []
    poisoned: list[str] = []

    async def handle(batch: list[HeartbeatReceived]) -> None:
        handled.extend(batch)

    def on_poison(message: Delivery, reason: str) -> None:
        poisoned.append(reason)

    before = {
        r: _dead_count(queue, r) for r in ("bad_json", "unknown_type", "oversized")
    }
    consumer_channel = await connection.channel()
    consumer = BatchConsumer(
        AmqpConsumerChannel(consumer_channel),
        queue,
        HeartbeatReceived.model_validate_json,
        handle,
        ConsumerOptions(
            max_batch=10,
            max_wait_ms=20,
            prefetch=20,
            on_poison=on_poison,
            max_message_bytes=4096,
        ),
    )
    await consumer.start()
    try:
        await _eventually(lambda: _check(len(handled) == 3 and len(poisoned) == 3))
    finally:
        await consumer.stop()
        await consumer_channel.close()

    assert [h.message_id for h in handled] == [g.message_id for g in good]
    assert sorted(poisoned) == ["bad_json", "oversized", "unknown_type"]
    for reason in before:
        assert _dead_count(queue, reason) == before[reason] + 1
    dead = {(await get_one(channel, topology.dead_queue(queue))).body for _ in range(3)}
    assert b"{not json" in dead
    assert await message_count(channel, queue) == 0
    await channel.close()


def _check(condition: bool) -> None:
    assert condition


async def test_always_failing_handler_dead_letters_after_delivery_limit(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    """A message whose handler always raises is redelivered, then dead-lettered."""
    channel = await connection.channel(publisher_confirms=True)
    queue = topology.heartbeats_queue
    bad, good = _hb(1), _hb(2)
    await _publish(channel, topology, to_message(bad))
    await _publish(channel, topology, to_message(good))
    attempts: dict[str, int] = {}
    committed: list[HeartbeatReceived] = []

    async def handle(batch: list[HeartbeatReceived]) -> None:
        for m in batch:
            attempts[str(m.message_id)] = attempts.get(str(m.message_id), 0) + 1
        if any(m.message_id == bad.message_id for m in batch):
            raise RuntimeError("this one always fails")
        committed.extend(batch)

    consumer_channel = await connection.channel()
    consumer = BatchConsumer(
        AmqpConsumerChannel(consumer_channel),
        queue,
        HeartbeatReceived.model_validate_json,
        handle,
        ConsumerOptions(max_batch=10, max_wait_ms=20, prefetch=20),
    )
    await consumer.start()
    try:
        dead = await get_one(channel, topology.dead_queue(queue), within=30)
    finally:
        await consumer.stop()
        await consumer_channel.close()
    assert dead.message_id == str(bad.message_id)
    # The good message shared the first batch and was still committed once.
    assert [m.message_id for m in committed] == [good.message_id]
    assert attempts[str(bad.message_id)] >= DELIVERY_LIMIT
    assert await message_count(channel, queue) == 0
    await channel.close()


async def test_transient_failure_is_retried_without_redelivery(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    """A handler that fails with a connection error is retried in place."""
    channel = await connection.channel(publisher_confirms=True)
    queue = topology.heartbeats_queue
    await _publish(channel, topology, to_message(_hb(1)))
    calls = 0
    committed: list[HeartbeatReceived] = []

    async def handle(batch: list[HeartbeatReceived]) -> None:
        nonlocal calls
        calls += 1
        if calls <= DELIVERY_LIMIT + 2:  # more failures than the delivery limit
            raise ConnectionRefusedError("database down")
        committed.extend(batch)

    consumer_channel = await connection.channel()
    consumer = BatchConsumer(
        AmqpConsumerChannel(consumer_channel),
        queue,
        HeartbeatReceived.model_validate_json,
        handle,
        ConsumerOptions(max_backoff=0.05),
    )
    await consumer.start()
    try:
        await _eventually(lambda: _check(len(committed) == 1))
        await asyncio.sleep(0)  # let the ack go out before the channel closes
    finally:
        await consumer.stop()
        await consumer_channel.close()
    assert await message_count(channel, topology.dead_queue(queue)) == 0
    assert await message_count(channel, queue) == 0
    await channel.close()
