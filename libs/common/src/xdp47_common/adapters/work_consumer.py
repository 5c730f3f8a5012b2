"""``ChannelConsumer``: a bus's ``WorkConsumer``, one ``BatchConsumer`` on a
channel of its own (both bus adapters hand out this one)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from xdp47_common.adapters.batching import BatchConsumer
from xdp47_common.adapters.deliveries import ConsumerChannel
from xdp47_common.bus import ConsumerOptions, Decode, Handle

__all__ = ["ChannelConsumer"]

T = TypeVar("T")


class ChannelConsumer(Generic[T]):
    """A bus's ``WorkConsumer``: a ``BatchConsumer`` on a channel of its own,
    opened at ``start`` and closed at ``stop`` (closing is what hands unacked
    deliveries back to the queue). ``running`` is the bus's set of started
    consumers, which it stops when it closes."""

    def __init__(
        self,
        open_channel: Callable[[], Awaitable[ConsumerChannel]],
        queue_name: str,
        decode: Decode[T],
        handle: Handle[T],
        options: ConsumerOptions,
        running: set[ChannelConsumer[Any]],
    ) -> None:
        self._open_channel = open_channel
        self._queue_name = queue_name
        self._decode = decode
        self._handle = handle
        self._options = options
        self._running = running
        self._channel: ConsumerChannel | None = None
        self._consumer: BatchConsumer[T] | None = None

    @property
    def queue_name(self) -> str:
        return self._queue_name

    @property
    def idle(self) -> bool:
        return self._consumer is not None and self._consumer.idle

    async def start(self) -> None:
        self._channel = await self._open_channel()
        self._consumer = BatchConsumer(
            self._channel, self._queue_name, self._decode, self._handle, self._options
        )
        self._running.add(self)
        await self._consumer.start()

    async def wait(self) -> None:
        if self._consumer is not None:
            await self._consumer.wait()

    async def stop(self) -> None:
        self._running.discard(self)
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
