"""RabbitMQ helpers for integration tests: a per-test topology, clean-up, polling.

Each test that declares queues gets its own namespace below the session's
``amqp_namespace`` and deletes what it declared, so runs never leave queues behind
on the shared broker.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import AMQPError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_fixed,
)

from xdp47_common.adapters.amqp import connect, declare_topology
from xdp47_common.topology import Topology


def child_topology(namespace: str) -> Topology:
    """A fresh topology under the session namespace."""
    return Topology(f"{namespace}_{uuid.uuid4().hex[:8]}")


async def delete_topology(
    connection: aio_pika.abc.AbstractConnection,
    t: Topology,
    retry_delays_ms: Iterable[int] = (),
) -> None:
    """Delete every queue and exchange ``t`` names, and the webhook worker's delay
    queue of each of ``retry_delays_ms``; missing ones are fine."""
    queues = [q for q, _, _ in t.work_queues]
    queues += [t.webhook_events_queue, t.webhook_deliveries_queue]
    queues += [t.dead_queue(q) for q in queues]
    queues += [t.webhook_retry_queue(d) for d in sorted(set(retry_delays_ms))]
    for name in queues:
        channel = await connection.channel()
        with contextlib.suppress(AMQPError):
            await channel.queue_delete(name)
        with contextlib.suppress(AMQPError):
            await channel.close()
    for name in (t.telemetry, t.commands, t.events, t.dlx, t.webhooks):
        channel = await connection.channel()
        with contextlib.suppress(AMQPError):
            await channel.exchange_delete(name)
        with contextlib.suppress(AMQPError):
            await channel.close()


async def drop_namespace(
    amqp_url: str, namespace: str, retry_delays_ms: Iterable[int] = ()
) -> None:
    """``delete_topology`` of ``namespace`` on a connection of its own; the
    connection is tried again for a while (a loaded broker may miss one)."""
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(60),
        wait=wait_fixed(1),
        retry=retry_if_exception_type((OSError, AMQPError, TimeoutError)),
        reraise=True,
    ):
        with attempt:
            connection = await connect(amqp_url)
    async with connection:
        await delete_topology(connection, Topology(namespace), retry_delays_ms)


@contextlib.asynccontextmanager
async def declared(
    connection: aio_pika.abc.AbstractConnection,
    namespace: str,
    retry_delays_ms: Iterable[int] = (),
) -> AsyncIterator[Topology]:
    """Declare a fresh child topology and delete it afterwards, with the delay
    queues of ``retry_delays_ms`` if the test declared them."""
    t = child_topology(namespace)
    channel = await connection.channel()
    try:
        await declare_topology(channel, t)
        await channel.close()
        yield t
    finally:
        await delete_topology(connection, t, retry_delays_ms)


class _Empty(Exception):
    pass


async def get_one(
    channel: AbstractChannel, queue_name: str, *, within: float = 10.0
) -> AbstractIncomingMessage:
    """Poll ``queue_name`` until a message is there; ack it and return it."""
    queue: AbstractQueue = await channel.get_queue(queue_name)
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(within),
        wait=wait_fixed(0.05),
        retry=retry_if_exception_type(_Empty),
        reraise=True,
    ):
        with attempt:
            message = await queue.get(fail=False)
            if message is None:
                raise _Empty(queue_name)
            await message.ack()
            return message
    raise AssertionError("unreachable")


async def message_count(channel: AbstractChannel, queue_name: str) -> int:
    """Ready messages in ``queue_name`` (passive declare)."""
    queue = await channel.declare_queue(queue_name, passive=True)
    result = queue.declaration_result
    return int(result.message_count or 0)
