"""RabbitMQ adapter: connection, idempotent topology, confirmed publishing.

Needs the ``amqp`` extra. Work queues are quorum queues with an explicit delivery
limit and at-least-once dead-lettering to ``xdp47.dlx``, one dead queue per work
queue. Every message is persistent and carries its ``message_id`` and the envelope
``type`` and ``version`` as AMQP properties. Consuming in batches lives in
``xdp47_common.adapters.batching`` over ``adapters.amqp_deliveries``.
"""

from __future__ import annotations

import asyncio

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractRobustConnection,
)
from prometheus_client import Counter

from xdp47_common.adapters.amqp_nodes import connect_nodes
from xdp47_common.bus import PublishFailed
from xdp47_common.messages.envelope import (
    Envelope,
    PreparedEnvelope,
    envelope_headers,
    envelope_json,
)
from xdp47_common.plumbing_metrics import PLUMBING
from xdp47_common.topology import DELIVERY_LIMIT, Topology

MESSAGES_PUBLISHED = Counter(
    "xdp47_messages_published_total",
    "Publishes by exchange and result (confirmed, failed: no confirm or no link).",
    ["exchange", "result"],
    registry=PLUMBING,
)

__all__ = [
    "MESSAGES_PUBLISHED",
    "AmqpPublisher",
    "PublishFailed",
    "connect",
    "declare_topology",
    "to_message",
]


async def connect(
    url: str, *, heartbeat: int = 30, connect_timeout: float = 10
) -> AbstractRobustConnection:
    """Open a robust connection (it reconnects and restores topology by itself).

    ``url`` may name several nodes of a cluster (``amqp_nodes``): the connection
    goes to the first that answers and fails over to the next one when lost.
    """
    return await connect_nodes(
        url, heartbeat=heartbeat, connect_timeout=connect_timeout
    )


async def declare_topology(
    channel: AbstractChannel, topology: Topology
) -> dict[str, AbstractExchange]:
    """Declare exchanges, work queues and dead-letter queues; idempotent.

    Args:
        channel: an open channel.
        topology: the names to declare.

    Returns:
        The declared exchanges by name.
    """
    exchanges: dict[str, AbstractExchange] = {}
    for name in (topology.telemetry, topology.commands, topology.events):
        exchanges[name] = await channel.declare_exchange(
            name, aio_pika.ExchangeType.TOPIC, durable=True
        )
    dlx = await channel.declare_exchange(
        topology.dlx, aio_pika.ExchangeType.DIRECT, durable=True
    )
    exchanges[topology.dlx] = dlx
    for queue_name, exchange, key in topology.work_queues:
        dead = await channel.declare_queue(
            topology.dead_queue(queue_name),
            durable=True,
            arguments={"x-queue-type": "quorum"},
        )
        await dead.bind(dlx, routing_key=queue_name)
        queue = await channel.declare_queue(
            queue_name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": DELIVERY_LIMIT,
                "x-dead-letter-exchange": topology.dlx,
                "x-dead-letter-routing-key": queue_name,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
        await queue.bind(exchanges[exchange], routing_key=key)
    return exchanges


def to_message(envelope: Envelope | PreparedEnvelope) -> aio_pika.Message:
    """Encode an envelope as a persistent AMQP message."""
    return aio_pika.Message(
        body=envelope_json(envelope),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(envelope.message_id),
        correlation_id=envelope.correlation_id,
        type=envelope.type,
        headers=envelope_headers(envelope),
    )


class AmqpPublisher:
    """Publishes envelopes and waits for the broker's confirm, bounded in time.

    Many concurrent ``publish`` calls share one channel: their confirms arrive
    pipelined, so each request waits for its own confirm without serialising.
    """

    def __init__(
        self,
        connection: AbstractRobustConnection,
        topology: Topology,
        *,
        timeout: float = 5.0,
    ) -> None:
        self._connection = connection
        self._topology = topology
        self._timeout = timeout
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}

    async def start(self) -> None:
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._exchanges = await declare_topology(self._channel, self._topology)

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    @property
    def is_ready(self) -> bool:
        """True while connected with an open channel (for readiness probes)."""
        return (
            self._channel is not None
            and not self._channel.is_closed
            and self._connection.connected.is_set()
        )

    async def publish(
        self, exchange: str, routing_key: str, envelope: Envelope | PreparedEnvelope
    ) -> None:
        """Publish and wait for the confirm.

        Raises:
            PublishFailed: no confirm within the timeout, a nack, or no connection.
        """
        ex = self._exchanges.get(exchange)
        if ex is None:
            raise PublishFailed(f"exchange {exchange!r} is not declared")
        try:
            await asyncio.wait_for(
                ex.publish(to_message(envelope), routing_key=routing_key),
                timeout=self._timeout,
            )
        except (TimeoutError, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and _task_cancelling():
                raise
            MESSAGES_PUBLISHED.labels(exchange, "failed").inc()
            raise PublishFailed("the broker did not confirm in time") from exc
        except Exception as exc:  # aiormq raises many types on a broken link
            MESSAGES_PUBLISHED.labels(exchange, "failed").inc()
            raise PublishFailed(f"publish failed: {exc.__class__.__name__}") from exc
        MESSAGES_PUBLISHED.labels(exchange, "confirmed").inc()


def _task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
