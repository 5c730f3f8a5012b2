"""RabbitMQ adapter: connection, idempotent topology, confirmed publishing.

Needs the ``amqp`` extra. Work queues are quorum queues with an explicit delivery
limit and at-least-once dead-lettering to ``xdp47.dlx``, one dead queue per work
queue. Every message is persistent and carries its ``message_id`` and the envelope
``type`` and ``version`` as AMQP properties. Consuming in batches lives in
``xdp47_common.adapters.batching`` over ``adapters.amqp_deliveries``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractRobustConnection,
)
from prometheus_client import Counter

from xdp47_common import tracing
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

if TYPE_CHECKING:
    from pamqp.common import FieldTable

_log = logging.getLogger(__name__)

__all__ = [
    "MESSAGES_PUBLISHED",
    "AmqpPublisher",
    "PublishFailed",
    "connect",
    "declare_topology",
    "declare_work_queue",
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
    # Webhook delivery jobs; its queues are declared by the webhook worker
    # (``amqp_webhooks``), only where webhooks run.
    exchanges[topology.webhooks] = await channel.declare_exchange(
        topology.webhooks, aio_pika.ExchangeType.DIRECT, durable=True
    )
    for queue_name, exchange, key in topology.work_queues:
        await declare_work_queue(
            channel, topology, queue_name, exchanges[exchange], key, reject_publish=True
        )
    return exchanges


async def declare_work_queue(
    channel: AbstractChannel,
    topology: Topology,
    name: str,
    exchange: AbstractExchange,
    key: str,
    *,
    reject_publish: bool,
) -> None:
    """A quorum work queue bound to ``exchange`` with ``key``, with its dead queue
    on the DLX (``topology.dlx``, declared already): a message is dead-lettered
    at least once after ``DELIVERY_LIMIT`` deliveries. ``reject_publish``: a full
    queue refuses publishes (the publisher sees it) instead of dropping its
    oldest message. Idempotent, given the same arguments."""
    dead = await channel.declare_queue(
        topology.dead_queue(name), durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead.bind(topology.dlx, routing_key=name)
    arguments: FieldTable = {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": topology.dlx,
        "x-dead-letter-routing-key": name,
        "x-dead-letter-strategy": "at-least-once",
    }
    if reject_publish:
        arguments["x-overflow"] = "reject-publish"
    queue = await channel.declare_queue(name, durable=True, arguments=arguments)
    await queue.bind(exchange, routing_key=key)


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

    A channel on which every publish has failed for ``stall_after`` seconds while
    its connection is up is replaced by a new one (the old one is closed): when the
    node leading a quorum queue dies just as the connection fails over, a
    channel can keep sending to the dead leader and never get a confirm again,
    while a new channel finds the elected one.
    """

    def __init__(
        self,
        connection: AbstractRobustConnection,
        topology: Topology,
        *,
        timeout: float = 5.0,
        stall_after: float | None = None,
    ) -> None:
        self._connection = connection
        self._topology = topology
        self._timeout = timeout
        self._stall_after = stall_after if stall_after is not None else 3 * timeout
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        # when publishes began to fail with no confirm since (None: the last
        # publish was confirmed)
        self._failing_since: float | None = None
        self._replacing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._exchanges = await declare_topology(self._channel, self._topology)

    async def close(self) -> None:
        if self._replacing is not None:
            self._replacing.cancel()
            await asyncio.gather(self._replacing, return_exceptions=True)
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    def _stalled(self) -> None:
        """After a failed publish: replace the channel when every publish has
        failed for ``stall_after`` seconds although the connection is up (while
        it is down, the connection restores the channel itself)."""
        now = asyncio.get_running_loop().time()
        if self._failing_since is None:
            self._failing_since = now
        if (
            now - self._failing_since < self._stall_after
            or self._replacing is not None
            or not self._connection.connected.is_set()
        ):
            return
        self._replacing = asyncio.get_running_loop().create_task(self._replace())

    async def _replace(self) -> None:
        old = self._channel
        try:
            channel = await asyncio.wait_for(
                self._connection.channel(publisher_confirms=True), self._timeout
            )
            exchanges = await asyncio.wait_for(
                declare_topology(channel, self._topology), self._timeout
            )
        except Exception as exc:  # aio-pika raises many types on a broken link
            _log.warning("publisher channel not replaced: %r", exc)
            return
        finally:
            self._replacing = None
        _log.warning(
            "publisher channel replaced: no confirm for %.0f s", self._stall_after
        )
        self._channel, self._exchanges = channel, exchanges
        self._failing_since = None
        if old is not None and not old.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.close(), self._timeout)

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
            message = to_message(envelope)
            # Trace hook (xdp47_common.tracing): the publish span, its context
            # into the headers; a shared null context when tracing is off.
            with tracing.publishing(exchange, routing_key, message.headers):
                await asyncio.wait_for(
                    ex.publish(message, routing_key=routing_key),
                    timeout=self._timeout,
                )
        except (TimeoutError, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and _task_cancelling():
                raise
            MESSAGES_PUBLISHED.labels(exchange, "failed").inc()
            self._stalled()
            raise PublishFailed("the broker did not confirm in time") from exc
        except Exception as exc:  # aiormq raises many types on a broken link
            MESSAGES_PUBLISHED.labels(exchange, "failed").inc()
            self._stalled()
            raise PublishFailed(f"publish failed: {exc.__class__.__name__}") from exc
        self._failing_since = None
        MESSAGES_PUBLISHED.labels(exchange, "confirmed").inc()


def _task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
