"""``InMemoryBus``: the bus port in one process, with RabbitMQ's semantics.

For the embedded demo (api, ingest and scheduler in one process share one
instance) and for tests that need no broker. It models what the services rely on:

- topic exchanges routing with ``*`` (one word) and ``#`` (zero or more words),
  a direct dead-letter exchange, and the work queues of ``Topology`` bound as the
  RabbitMQ adapter binds them;
- messages stay in their queue until acked: a nack with requeue, or a consumer
  that stops (its channel closes) with deliveries unacked, puts them back in
  publish order and counts a delivery; past ``DELIVERY_LIMIT`` the message goes
  to the queue's dead queue, like a quorum queue's ``x-delivery-limit``;
- a consumer holds at most ``prefetch`` unacked deliveries;
- event subscriptions are private queues with a length bound (oldest dropped),
  deleted when closed.

Batch consumption runs the very same ``BatchConsumer`` as the RabbitMQ adapter,
over the in-memory channel below, so the decode / poison / ack-after-handle /
requeue rules cannot drift between the two. Nothing is durable across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from xdp47_common.adapters.amqp_batch import BatchConsumer
from xdp47_common.bus import (
    Decode,
    Handle,
    OnEvent,
    OnPoison,
    PublishFailed,
    QueueDepth,
    default_is_transient,
)
from xdp47_common.messages.envelope import Envelope, PreparedEnvelope, envelope_json
from xdp47_common.topology import DELIVERY_LIMIT, Topology

__all__ = ["InMemoryBus", "topic_matches"]

T = TypeVar("T")
_seq = itertools.count()


def topic_matches(pattern: str, key: str) -> bool:
    """RabbitMQ topic matching: ``*`` is one word, ``#`` zero or more."""

    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        if not k:
            return False
        return (p[0] == "*" or p[0] == k[0]) and match(p[1:], k[1:])

    return match(pattern.split("."), key.split("."))


@dataclass(order=True)
class _Message:
    seq: int
    body: bytes = field(compare=False)
    routing_key: str = field(compare=False)
    message_id: str | None = field(compare=False, default=None)
    type: str | None = field(compare=False, default=None)
    headers: dict[str, Any] = field(compare=False, default_factory=dict)
    returns: int = field(compare=False, default=0)


@dataclass
class _Exchange:
    name: str
    topic: bool
    bindings: list[tuple[str, _Queue]] = field(default_factory=list)

    def route(self, key: str) -> list[_Queue]:
        found: dict[int, _Queue] = {}
        for pattern, queue in self.bindings:
            hit = topic_matches(pattern, key) if self.topic else pattern == key
            if hit:
                found[id(queue)] = queue
        return list(found.values())


class _Queue:
    def __init__(
        self,
        bus: InMemoryBus,
        name: str,
        *,
        dead_letter: tuple[str, str] | None = None,
        delivery_limit: int | None = None,
        max_length: int | None = None,
    ) -> None:
        self.bus = bus
        self.name = name
        self.dead_letter = dead_letter
        self.delivery_limit = delivery_limit
        self.max_length = max_length
        self.ready: list[_Message] = []  # a heap in publish order
        self.consumers = 0
        self.changed = asyncio.Condition()

    def put(self, message: _Message) -> None:
        heapq.heappush(self.ready, message)
        if self.max_length is not None:
            while len(self.ready) > self.max_length:
                heapq.heappop(self.ready)  # drop-head, RabbitMQ's default overflow
        self._wake()

    def give_back(self, message: _Message) -> None:
        """A delivery came back unacked: count it, requeue or dead-letter."""
        message.returns += 1
        if self.delivery_limit is not None and message.returns > self.delivery_limit:
            self.dead(message)
        else:
            self.put(message)

    def dead(self, message: _Message) -> None:
        if self.dead_letter is None:
            return
        exchange, key = self.dead_letter
        self.bus._route(
            exchange,
            key,
            _Message(
                next(_seq),
                message.body,
                key,
                message.message_id,
                message.type,
                dict(message.headers),
            ),
        )

    def _wake(self) -> None:
        async def notify() -> None:
            async with self.changed:
                self.changed.notify_all()

        self.bus._spawn(notify())


class _Delivery:
    """An incoming message as ``BatchConsumer`` (and event handlers) use it."""

    def __init__(self, channel: _Channel, queue: _Queue, msg: _Message, tag: int):
        self.channel = channel
        self.queue = queue
        self.message = msg
        self.delivery_tag = tag
        self.body = msg.body
        self.message_id = msg.message_id
        self.type = msg.type
        self.routing_key: str | None = msg.routing_key
        self.headers = msg.headers
        self.redelivered = msg.returns > 0

    async def ack(self, multiple: bool = False) -> None:
        self.channel._settle(self, multiple=multiple)

    async def nack(self, multiple: bool = False, requeue: bool = True) -> None:
        self.channel._settle(self)
        if requeue:
            self.queue.give_back(self.message)
        else:
            self.queue.dead(self.message)

    async def reject(self, requeue: bool = False) -> None:
        await self.nack(requeue=requeue)


class _Consumption:
    """Pushes ready messages of one queue to one callback, within prefetch."""

    def __init__(
        self,
        channel: _Channel,
        queue: _Queue,
        callback: Callable[[_Delivery], Awaitable[Any]],
        no_ack: bool,
    ) -> None:
        self.channel = channel
        self.queue = queue
        self.callback = callback
        self.no_ack = no_ack
        queue.consumers += 1
        self.task = asyncio.create_task(self._run(), name=f"memory:{queue.name}")

    def _can_take(self) -> bool:
        room = self.no_ack or len(self.channel.unacked) < self.channel.prefetch
        return bool(self.queue.ready) and room

    async def _run(self) -> None:
        while True:
            async with self.queue.changed:
                await self.queue.changed.wait_for(self._can_take)
                message = heapq.heappop(self.queue.ready)
            delivery = self.channel._deliver(self.queue, message, self.no_ack)
            await self.callback(delivery)

    async def cancel(self) -> None:
        self.queue.consumers -= 1
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


class _ChannelQueue:
    """The queue object ``BatchConsumer`` gets from ``channel.get_queue``."""

    def __init__(self, channel: _Channel, queue: _Queue) -> None:
        self._channel = channel
        self._queue = queue

    async def consume(
        self, callback: Callable[[_Delivery], Awaitable[Any]], no_ack: bool = False
    ) -> str:
        return self._channel._consume(self._queue, callback, no_ack)

    async def cancel(self, tag: str) -> None:
        await self._channel._cancel(tag)


class _Channel:
    """Per-consumer delivery tags, prefetch and unacked deliveries, like AMQP's."""

    def __init__(self, bus: InMemoryBus) -> None:
        self.bus = bus
        self.prefetch = 1 << 30
        self.unacked: dict[int, _Delivery] = {}
        self.is_closed = False
        self._tags = itertools.count(1)
        self._consumptions: dict[str, _Consumption] = {}

    async def set_qos(self, prefetch_count: int) -> None:
        self.prefetch = prefetch_count

    async def get_queue(self, name: str, ensure: bool = True) -> _ChannelQueue:
        return _ChannelQueue(self, self.bus._queue(name))

    def _consume(
        self,
        queue: _Queue,
        callback: Callable[[_Delivery], Awaitable[Any]],
        no_ack: bool,
    ) -> str:
        tag = f"ctag-{next(self._tags)}"
        self._consumptions[tag] = _Consumption(self, queue, callback, no_ack)
        return tag

    async def _cancel(self, tag: str) -> None:
        consumption = self._consumptions.pop(tag, None)
        if consumption is not None:
            await consumption.cancel()

    def _deliver(self, queue: _Queue, message: _Message, no_ack: bool) -> _Delivery:
        delivery = _Delivery(self, queue, message, next(self._tags))
        if not no_ack:
            self.unacked[delivery.delivery_tag] = delivery
        return delivery

    def _settle(self, delivery: _Delivery, *, multiple: bool = False) -> None:
        tags = (
            [t for t in self.unacked if t <= delivery.delivery_tag]
            if multiple
            else [delivery.delivery_tag]
        )
        queues = set()
        for tag in tags:
            settled = self.unacked.pop(tag, None)
            if settled is not None:
                queues.add(settled.queue)
        for queue in queues:
            queue._wake()  # room under prefetch again

    async def close(self) -> None:
        if self.is_closed:
            return
        self.is_closed = True
        for tag in list(self._consumptions):
            await self._cancel(tag)
        # Unacked deliveries go back to their queue, counted, in publish order.
        for delivery in sorted(self.unacked.values(), key=lambda d: d.message.seq):
            delivery.queue.give_back(delivery.message)
        self.unacked.clear()


class _MemoryConsumer(Generic[T]):
    def __init__(
        self, bus: InMemoryBus, make: Callable[[_Channel], BatchConsumer[T]], name: str
    ) -> None:
        self._bus = bus
        self._make = make
        self._name = name
        self._channel: _Channel | None = None
        self._consumer: BatchConsumer[T] | None = None

    @property
    def queue_name(self) -> str:
        return self._name

    @property
    def idle(self) -> bool:
        return self._consumer is not None and self._consumer.idle

    async def start(self) -> None:
        self._bus._queue(self._name)  # fail now on a queue that does not exist
        self._channel = _Channel(self._bus)
        self._consumer = self._make(self._channel)
        self._bus._consumers.add(self)
        await self._consumer.start()

    async def wait(self) -> None:
        if self._consumer is not None:
            await self._consumer.wait()

    async def stop(self) -> None:
        self._bus._consumers.discard(self)
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


class _MemorySubscription:
    def __init__(self, bus: InMemoryBus, exchange: str, queue: _Queue) -> None:
        self._bus = bus
        self._exchange = bus._exchange(exchange)
        self._queue = queue
        self._channel = _Channel(bus)

    async def bind(self, pattern: str) -> None:
        self._exchange.bindings.append((pattern, self._queue))

    async def unbind(self, pattern: str) -> None:
        with contextlib.suppress(ValueError):
            self._exchange.bindings.remove((pattern, self._queue))

    async def close(self) -> None:
        self._bus._subscriptions.discard(self)
        self._exchange.bindings = [
            b for b in self._exchange.bindings if b[1] is not self._queue
        ]
        await self._channel.close()
        self._bus._queues.pop(self._queue.name, None)  # auto-delete


class InMemoryBus:
    """The bus in one process; share one instance between the services in it."""

    def __init__(self, topology: Topology | None = None) -> None:
        self._topology = topology or Topology()
        self._exchanges: dict[str, _Exchange] = {}
        self._queues: dict[str, _Queue] = {}
        self._consumers: set[_MemoryConsumer[Any]] = set()
        self._subscriptions: set[_MemorySubscription] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False
        self._closed = False

    @property
    def topology(self) -> Topology:
        return self._topology

    @property
    def is_ready(self) -> bool:
        return self._started and not self._closed

    async def start(self) -> None:
        """Declare the topology (idempotent, like the RabbitMQ declares)."""
        t = self._topology
        for name in (t.telemetry, t.commands, t.events):
            self._exchanges.setdefault(name, _Exchange(name, topic=True))
        self._exchanges.setdefault(t.dlx, _Exchange(t.dlx, topic=False))
        for queue_name, exchange, key in t.work_queues:
            dead_name = t.dead_queue(queue_name)
            if dead_name not in self._queues:
                dead = self._queues[dead_name] = _Queue(self, dead_name)
                self._exchanges[t.dlx].bindings.append((queue_name, dead))
            if queue_name not in self._queues:
                queue = self._queues[queue_name] = _Queue(
                    self,
                    queue_name,
                    dead_letter=(t.dlx, queue_name),
                    delivery_limit=DELIVERY_LIMIT,
                )
                self._exchanges[exchange].bindings.append((key, queue))
        self._started = True
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        for consumer in tuple(self._consumers):
            await consumer.stop()
        for sub in tuple(self._subscriptions):
            await sub.close()
        for task in tuple(self._tasks):
            task.cancel()

    async def publish(
        self, exchange: str, routing_key: str, envelope: Envelope | PreparedEnvelope
    ) -> None:
        self.publish_raw(
            exchange,
            routing_key,
            envelope_json(envelope),
            message_id=str(envelope.message_id),
            type=envelope.type,
            headers={"x-version": envelope.version, "x-tenant": envelope.tenant},
        )

    def publish_raw(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str | None = None,
        type: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> None:
        """Publish bytes as they are (tests use it to send poison).

        Raises:
            PublishFailed: the bus is closed or the exchange is not declared.
        """
        if not self.is_ready:
            raise PublishFailed("the in-memory bus is not running")
        if exchange not in self._exchanges:
            raise PublishFailed(f"exchange {exchange!r} is not declared")
        self._route(
            exchange,
            routing_key,
            _Message(next(_seq), body, routing_key, message_id, type, headers or {}),
        )

    def batch_consumer(
        self,
        queue_name: str,
        decode: Decode[T],
        handle: Handle[T],
        *,
        max_batch: int = 500,
        max_wait_ms: float = 50,
        prefetch: int = 1000,
        on_poison: OnPoison | None = None,
        max_message_bytes: int = 1 << 20,
        is_transient: Callable[[BaseException], bool] = default_is_transient,
    ) -> _MemoryConsumer[T]:
        def make(channel: _Channel) -> BatchConsumer[T]:
            return BatchConsumer(
                # Duck-typed: the subset of aio-pika's channel BatchConsumer uses.
                cast(Any, channel),
                queue_name,
                decode,
                handle,
                max_batch=max_batch,
                max_wait_ms=max_wait_ms,
                prefetch=prefetch,
                on_poison=on_poison,
                max_message_bytes=max_message_bytes,
                is_transient=is_transient,
            )

        return _MemoryConsumer(self, make, queue_name)

    async def subscribe(
        self, exchange: str, on_event: OnEvent, *, max_length: int = 10_000
    ) -> _MemorySubscription:
        name = f"amq.gen-{next(_seq)}"
        queue = self._queues[name] = _Queue(self, name, max_length=max_length)
        sub = _MemorySubscription(self, exchange, queue)
        sub._channel._consume(queue, on_event, no_ack=True)
        self._subscriptions.add(sub)
        return sub

    async def queue_depth(self, queue_name: str) -> QueueDepth:
        queue = self._queue(queue_name)
        return QueueDepth(len(queue.ready), queue.consumers)

    # -- internals -------------------------------------------------------------

    def _exchange(self, name: str) -> _Exchange:
        try:
            return self._exchanges[name]
        except KeyError:
            raise LookupError(f"exchange {name!r} is not declared") from None

    def _queue(self, name: str) -> _Queue:
        try:
            return self._queues[name]
        except KeyError:
            raise LookupError(f"queue {name!r} does not exist") from None

    def _route(self, exchange: str, key: str, message: _Message) -> None:
        ex = self._exchanges.get(exchange)
        if ex is None:
            return
        queues = ex.route(key)
        for i, queue in enumerate(queues):
            # Each queue gets its own copy: delivery counts are per queue.
            copy = (
                message
                if i == 0
                else _Message(
                    message.seq,
                    message.body,
                    message.routing_key,
                    message.message_id,
                    message.type,
                    dict(message.headers),
                )
            )
            queue.put(copy)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
