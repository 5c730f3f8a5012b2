"""What a batch consumer needs from a broker's channel: the seam between
``BatchConsumer`` and each bus adapter.

``BatchConsumer`` (``adapters.batching``) owns the at-least-once rules; a bus
adapter hands it a :class:`ConsumerChannel` that subscribes to one queue and
delivers :class:`Incoming` messages it can settle. RabbitMQ's is
``adapters.amqp_deliveries``, the in-memory bus's is ``adapters.memory_channel``;
a test can wrap either (the fault tests requeue a share of deliveries). Neither
protocol names a broker library.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, Protocol

from xdp47_common.bus import Delivery

__all__ = ["ConsumerChannel", "Deliver", "Incoming"]


class Incoming(Delivery, Protocol):
    """A delivery that is still to be settled.

    Settling returns False when the delivery's channel is gone: the broker takes
    it back and delivers it again (consumers are idempotent), so the consumer
    just moves on.
    """

    @property
    def headers(self) -> Mapping[str, Any] | None:
        """The message's headers (trace context travels there)."""
        ...

    @property
    def live(self) -> bool:
        """False once its channel closed: its tag is meaningless now."""
        ...

    @property
    def channel_key(self) -> Hashable:
        """Equal for deliveries of one channel (an ack of many needs one)."""
        ...

    async def ack(self, *, multiple: bool = False) -> bool:
        """Ack this one, or with ``multiple`` every delivery of its channel up
        to this one."""
        ...

    async def requeue(self) -> bool:
        """Give it back to its queue (a delivery counted)."""
        ...

    async def dead_letter(self) -> bool:
        """Reject it without requeue: the queue dead-letters it."""
        ...


Deliver = Callable[[Incoming], Awaitable[None]]


class ConsumerChannel(Protocol):
    """One consumer's channel: its own prefetch, its own deliveries."""

    async def consume(self, queue_name: str, prefetch: int, deliver: Deliver) -> None:
        """Subscribe to ``queue_name`` (it must exist) with at most ``prefetch``
        unacked deliveries; ``deliver`` gets each one, in order."""
        ...

    async def cancel(self) -> None:
        """Stop deliveries (never raises: the channel may be gone already);
        unacked ones stay held until settled or the channel closes."""
        ...

    async def close(self) -> None:
        """Close the channel: deliveries not acked go back to their queue
        (never raises)."""
        ...
