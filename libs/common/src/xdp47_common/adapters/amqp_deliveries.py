"""RabbitMQ's side of ``adapters.deliveries``: an aio-pika channel as a
``ConsumerChannel``, its messages as ``Incoming``.

A settle on a channel that closed (a reconnect replaced it) answers False
instead of raising: the broker redelivers, and consumers are idempotent
(reliability note M9). Needs the ``amqp`` extra.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Hashable, Mapping
from typing import Any

from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    ConsumerTag,
)
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from xdp47_common.adapters.deliveries import Deliver

__all__ = ["AmqpConsumerChannel", "AmqpIncoming"]

_LOST = (ChannelInvalidStateError, AMQPError)


class AmqpIncoming:
    """One aio-pika delivery, settled without raising on a lost channel."""

    __slots__ = ("body", "message", "message_id", "routing_key", "type")

    def __init__(self, message: AbstractIncomingMessage) -> None:
        self.message = message
        self.body = message.body
        self.message_id = message.message_id
        self.type = message.type
        self.routing_key = message.routing_key

    @property
    def headers(self) -> Mapping[str, Any]:
        return self.message.headers

    @property
    def live(self) -> bool:
        try:
            return not self.message.channel.is_closed
        except ChannelInvalidStateError:
            return False

    @property
    def channel_key(self) -> Hashable:
        try:
            return id(self.message.channel)
        except ChannelInvalidStateError:
            return None

    async def ack(self, *, multiple: bool = False) -> bool:
        return await _settled(self.message.ack(multiple=multiple))

    async def requeue(self) -> bool:
        return await _settled(self.message.nack(requeue=True))

    async def dead_letter(self) -> bool:
        return await _settled(self.message.reject(requeue=False))


async def _settled(settle: Awaitable[None]) -> bool:
    """False when the channel went away before the settle reached it."""
    try:
        await settle
    except _LOST:
        return False
    return True


class AmqpConsumerChannel:
    """A channel used by one consumer only (prefetch is per channel). A robust
    channel resubscribes the consumer after a reconnect."""

    def __init__(self, channel: AbstractChannel) -> None:
        self._channel = channel
        self._queue: AbstractQueue | None = None
        self._tag: ConsumerTag | None = None

    async def consume(self, queue_name: str, prefetch: int, deliver: Deliver) -> None:
        await self._channel.set_qos(prefetch_count=prefetch)
        self._queue = await self._channel.get_queue(queue_name, ensure=True)

        async def on_message(message: AbstractIncomingMessage) -> None:
            await deliver(AmqpIncoming(message))

        self._tag = await self._queue.consume(on_message)

    async def cancel(self) -> None:
        tag, self._tag = self._tag, None
        if tag is None or self._queue is None or self._channel.is_closed:
            return
        with contextlib.suppress(*_LOST):
            queue = await self._channel.get_queue(self._queue.name, ensure=False)
            await queue.cancel(tag)

    async def close(self) -> None:
        if not self._channel.is_closed:
            with contextlib.suppress(Exception):  # the link may be gone already
                await self._channel.close()
