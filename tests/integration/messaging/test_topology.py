"""Topology declaration and confirmed publishing on the real RabbitMQ."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from tests.support.amqp import get_one, message_count
from xdp47_common.adapters.amqp import AmqpPublisher, declare_topology
from xdp47_common.bus import PublishFailed
from xdp47_common.clock import utcnow
from xdp47_common.messages import Heartbeat, HeartbeatReceived, StartRollout
from xdp47_common.plumbing_metrics import PLUMBING
from xdp47_common.topology import DELIVERY_LIMIT, Topology

pytestmark = pytest.mark.integration


def _heartbeat(tenant: str = "acme", device: str = "dev-1", seq: int = 1):
    return HeartbeatReceived(
        tenant=tenant,
        heartbeat=Heartbeat(seq=seq, device_id=device, received_at=utcnow()),
    )


async def test_declare_twice_is_idempotent(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    """Declaring again with the same arguments neither fails nor empties queues."""
    channel = await connection.channel()
    await channel.default_exchange.publish(
        aio_pika.Message(b"{}"), routing_key=topology.heartbeats_queue
    )
    await declare_topology(channel, topology)
    await declare_topology(channel, topology)
    # A passive declare with different arguments would have closed the channel;
    # a second full declare with the same ones is accepted and keeps the message.
    assert await message_count(channel, topology.heartbeats_queue) == 1
    queue = await channel.declare_queue(
        topology.heartbeats_queue,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": topology.dlx,
            "x-dead-letter-routing-key": topology.heartbeats_queue,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )
    assert queue.declaration_result.message_count == 1
    await channel.close()


async def test_confirmed_publish_arrives_persistent_with_id_and_type(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    publisher = AmqpPublisher(connection, topology, timeout=5)
    await publisher.start()
    labels = {"exchange": topology.telemetry, "result": "confirmed"}

    def confirmed() -> float:
        value = PLUMBING.get_sample_value("xdp47_messages_published_total", labels)
        return value or 0.0

    before = confirmed()
    hb = _heartbeat(seq=7)
    await publisher.publish(topology.telemetry, topology.heartbeat_key("acme"), hb)
    start = StartRollout(tenant="acme", rollout_id=hb.message_id)
    await publisher.publish(topology.commands, topology.command_key(start.type), start)
    await publisher.close()
    assert confirmed() == before + 1  # counted per exchange

    channel = await connection.channel()
    got = await get_one(channel, topology.heartbeats_queue)
    assert got.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert got.message_id == str(hb.message_id)
    assert got.type == "heartbeat.received"
    assert got.headers["x-version"] == 1
    assert HeartbeatReceived.model_validate_json(got.body) == hb
    cmd = await get_one(channel, topology.commands_queue)
    assert cmd.type == "rollout.start"
    assert cmd.message_id == str(start.message_id)
    await channel.close()


async def test_a_channel_that_stopped_confirming_is_replaced(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    # A channel that still sends to a quorum queue's dead leader never gets a
    # confirm again although the connection is up; publishing must not fail
    # from then on. Stand-in for that broker state: the channel's exchange
    # never answers.
    publisher = AmqpPublisher(connection, topology, timeout=0.5, stall_after=1.0)
    await publisher.start()
    stalled = publisher._exchanges[topology.telemetry]
    never = asyncio.Event()

    async def no_confirm(*args: object, **kwargs: object) -> None:
        await never.wait()

    stalled.publish = no_confirm  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    began = loop.time()
    while True:
        try:
            await publisher.publish(
                topology.telemetry, topology.heartbeat_key("acme"), _heartbeat()
            )
            break
        except PublishFailed:
            assert loop.time() - began < 30, "the stalled channel was kept"
            await asyncio.sleep(0.1)
    # replaced only after stall_after without a confirm, not at the first timeout
    assert loop.time() - began >= 1.0
    assert publisher._exchanges[topology.telemetry] is not stalled
    assert publisher.is_ready
    await publisher.close()
