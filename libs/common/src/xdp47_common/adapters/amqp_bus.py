"""``AmqpBus``: the bus port (``xdp47_common.bus.Bus``) on RabbitMQ.

A thin composition of what ``adapters.amqp``, ``adapters.batching`` and
``adapters.amqp_deliveries`` already do: one robust connection, the topology
declared at start, one confirming publisher channel (``AmqpPublisher``), and a
channel of its own for each batch consumer (prefetch is per channel) and each
event subscription, and one kept for ``queue_depth``'s looks. Needs the ``amqp`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from xdp47_common.adapters.amqp import AmqpPublisher, connect
from xdp47_common.adapters.amqp_deliveries import AmqpConsumerChannel
from xdp47_common.adapters.deliveries import ConsumerChannel
from xdp47_common.adapters.work_consumer import ChannelConsumer
from xdp47_common.bus import (
    ConsumerOptions,
    Decode,
    Handle,
    OnEvent,
    PublishFailed,
    QueueDepth,
)
from xdp47_common.messages.envelope import Envelope, PreparedEnvelope
from xdp47_common.topology import Topology

__all__ = ["AmqpBus"]

T = TypeVar("T")


class _AmqpSubscription:
    def __init__(
        self,
        owner: AmqpBus,
        channel: AbstractChannel,
        exchange: str,
        queue: AbstractQueue,
    ) -> None:
        self._owner = owner
        self._channel = channel
        self._exchange = exchange
        self._queue = queue

    async def bind(self, pattern: str) -> None:
        await self._queue.bind(self._exchange, routing_key=pattern)

    async def unbind(self, pattern: str) -> None:
        await self._queue.unbind(self._exchange, routing_key=pattern)

    async def close(self) -> None:
        self._owner._subscriptions.discard(self)
        if not self._channel.is_closed:
            with contextlib.suppress(Exception):  # exclusive queue goes with it
                await self._channel.close()


class AmqpBus:
    """The bus on RabbitMQ at ``url``, names from ``topology``.

    Args:
        url: the broker URL.
        topology: exchange and queue names.
        publish_timeout: seconds to wait for a publisher confirm.
        connection: an open connection to use instead of opening one (the
            caller keeps owning it).
    """

    def __init__(
        self,
        url: str,
        topology: Topology,
        *,
        publish_timeout: float = 5.0,
        connection: AbstractRobustConnection | None = None,
    ) -> None:
        self._url = url
        self._topology = topology
        self._timeout = publish_timeout
        self._connection = connection
        self._owns_connection = connection is None
        self._publisher: AmqpPublisher | None = None
        self._consumers: set[ChannelConsumer[Any]] = set()
        self._subscriptions: set[_AmqpSubscription] = set()
        # ``queue_depth``'s channel (opened at the first look), one look at a
        # time: a missing queue closes it under the others.
        self._inspection: AbstractChannel | None = None
        self._inspecting = asyncio.Lock()
        self._closed = False

    @property
    def topology(self) -> Topology:
        return self._topology

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("AmqpBus is not started")
        return self._connection

    @property
    def is_ready(self) -> bool:
        return self._publisher is not None and self._publisher.is_ready

    async def start(self) -> None:
        if self._publisher is not None:
            return
        if self._connection is None:
            self._connection = await connect(self._url)
        # The publisher declares the whole topology on its channel (idempotent).
        publisher = AmqpPublisher(
            self._connection, self._topology, timeout=self._timeout
        )
        await publisher.start()
        self._publisher = publisher

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for consumer in tuple(self._consumers):
            await consumer.stop()
        for sub in tuple(self._subscriptions):
            await sub.close()
        if self._inspection is not None and not self._inspection.is_closed:
            with contextlib.suppress(Exception):
                await self._inspection.close()
        if self._publisher is not None:
            await self._publisher.close()
        if self._owns_connection and self._connection is not None:
            await self._connection.close()

    async def publish(
        self, exchange: str, routing_key: str, envelope: Envelope | PreparedEnvelope
    ) -> None:
        if self._publisher is None:
            raise PublishFailed("the bus is not started")
        await self._publisher.publish(exchange, routing_key, envelope)

    def batch_consumer(
        self,
        queue_name: str,
        decode: Decode[T],
        handle: Handle[T],
        options: ConsumerOptions = ConsumerOptions(),
    ) -> ChannelConsumer[T]:
        async def open_channel() -> ConsumerChannel:
            return self.consumer_channel(await self.connection.channel())

        return ChannelConsumer(
            open_channel, queue_name, decode, handle, options, self._consumers
        )

    def consumer_channel(self, channel: AbstractChannel) -> ConsumerChannel:
        """What a batch consumer consumes through, on ``channel`` (its own).
        A test subclass wraps it to inject faults."""
        return AmqpConsumerChannel(channel)

    async def subscribe(
        self, exchange: str, on_event: OnEvent, *, max_length: int = 10_000
    ) -> _AmqpSubscription:
        channel = await self.connection.channel()
        try:
            ex = await channel.declare_exchange(
                exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(
                exclusive=True,
                auto_delete=True,
                arguments={"x-max-length": max_length},
            )

            async def deliver(message: AbstractIncomingMessage) -> None:
                await on_event(message)

            await queue.consume(deliver, no_ack=True)
        except BaseException:
            with contextlib.suppress(Exception):
                await channel.close()
            raise
        sub = _AmqpSubscription(self, channel, ex.name, queue)
        self._subscriptions.add(sub)
        return sub

    async def queue_depth(self, queue_name: str) -> QueueDepth:
        """A passive look at ``queue_name`` on the bus's inspection channel,
        kept open between looks: the scheduler looks every tick, and a channel
        opened and closed per look cost the broker ~350 µs and the caller ~700
        µs of CPU, against ~30 and ~85 on a kept one (docs/performance.md)."""
        async with self._inspecting:
            channel = await self._inspection_channel()
            try:
                # Asked of the broker itself: aio-pika's robust channel answers
                # a passive declare of a queue it declared before from memory.
                underlay = await channel.get_underlay_channel()
                ok = await underlay.queue_declare(queue_name, passive=True)
            except Exception as exc:  # aio-pika and aiormq raise many types
                # A missing queue closes the channel: the next look opens one.
                self._inspection = None
                with contextlib.suppress(Exception):
                    await channel.close()
                raise LookupError(type(exc).__name__) from exc
        return QueueDepth(int(ok.message_count or 0), int(ok.consumer_count or 0))

    async def _inspection_channel(self) -> AbstractChannel:
        channel = self._inspection
        if channel is None or channel.is_closed:
            try:
                channel = await self.connection.channel()
            except Exception as exc:  # aio-pika raises many types on a broken link
                raise LookupError(f"broker: {type(exc).__name__}") from exc
            self._inspection = channel
        return channel
