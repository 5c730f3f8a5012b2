"""The in-memory broker behind ``InMemoryBus``: exchanges, queues and routing.

- topic exchanges route with ``*`` (one word) and ``#`` (zero or more words), a
  direct dead-letter exchange, and the work queues of ``Topology`` bound as the
  RabbitMQ adapter binds them;
- a message given back unacked is counted; past ``DELIVERY_LIMIT`` it goes to
  the queue's dead queue, like a quorum queue's ``x-delivery-limit``;
- a queue with ``max_length`` drops its oldest message (RabbitMQ's default).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from xdp47_common.topology import DELIVERY_LIMIT, Topology

__all__ = ["Broker", "Exchange", "Message", "Queue", "topic_matches"]

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
class Message:
    seq: int
    body: bytes = field(compare=False)
    routing_key: str = field(compare=False)
    message_id: str | None = field(compare=False, default=None)
    type: str | None = field(compare=False, default=None)
    headers: dict[str, Any] = field(compare=False, default_factory=dict)
    returns: int = field(compare=False, default=0)

    def copy(self, *, routing_key: str | None = None, fresh: bool = False) -> Message:
        """A copy with its own headers and delivery count (``fresh``: a new
        place in publish order, as a dead-lettered message gets)."""
        return Message(
            next(_seq) if fresh else self.seq,
            self.body,
            self.routing_key if routing_key is None else routing_key,
            self.message_id,
            self.type,
            dict(self.headers),
        )


def new_message(
    body: bytes,
    routing_key: str,
    message_id: str | None,
    type: str | None,
    headers: dict[str, Any],
) -> Message:
    return Message(next(_seq), body, routing_key, message_id, type, headers)


@dataclass
class Exchange:
    name: str
    topic: bool
    bindings: list[tuple[str, Queue]] = field(default_factory=list)

    def route(self, key: str) -> list[Queue]:
        found: dict[int, Queue] = {}
        for pattern, queue in self.bindings:
            hit = topic_matches(pattern, key) if self.topic else pattern == key
            if hit:
                found[id(queue)] = queue
        return list(found.values())


class Queue:
    def __init__(
        self,
        broker: Broker,
        name: str,
        *,
        dead_letter: tuple[str, str] | None = None,
        delivery_limit: int | None = None,
        max_length: int | None = None,
    ) -> None:
        self.broker = broker
        self.name = name
        self.dead_letter = dead_letter
        self.delivery_limit = delivery_limit
        self.max_length = max_length
        self.ready: list[Message] = []  # a heap in publish order
        self.consumers = 0
        self.changed = asyncio.Condition()

    def put(self, message: Message) -> None:
        heapq.heappush(self.ready, message)
        if self.max_length is not None:
            while len(self.ready) > self.max_length:
                heapq.heappop(self.ready)  # drop-head, RabbitMQ's default overflow
        self.wake()

    def give_back(self, message: Message) -> None:
        """A delivery came back unacked: count it, requeue or dead-letter."""
        message.returns += 1
        if self.delivery_limit is not None and message.returns > self.delivery_limit:
            self.dead(message)
        else:
            self.put(message)

    def dead(self, message: Message) -> None:
        if self.dead_letter is None:
            return
        exchange, key = self.dead_letter
        self.broker.route(exchange, key, message.copy(routing_key=key, fresh=True))

    def wake(self) -> None:
        async def notify() -> None:
            async with self.changed:
                self.changed.notify_all()

        self.broker.spawn(notify())


class Broker:
    """Exchanges and queues of one process, and the tasks that wake consumers."""

    def __init__(self) -> None:
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def declare(self, t: Topology) -> None:
        """Declare the topology (idempotent, like the RabbitMQ declares)."""
        for name in (t.telemetry, t.commands, t.events):
            self.exchanges.setdefault(name, Exchange(name, topic=True))
        self.exchanges.setdefault(t.dlx, Exchange(t.dlx, topic=False))
        for queue_name, exchange, key in t.work_queues:
            dead_name = t.dead_queue(queue_name)
            if dead_name not in self.queues:
                dead = self.queues[dead_name] = Queue(self, dead_name)
                self.exchanges[t.dlx].bindings.append((queue_name, dead))
            if queue_name not in self.queues:
                queue = self.queues[queue_name] = Queue(
                    self,
                    queue_name,
                    dead_letter=(t.dlx, queue_name),
                    delivery_limit=DELIVERY_LIMIT,
                )
                self.exchanges[exchange].bindings.append((key, queue))

    def exchange(self, name: str) -> Exchange:
        try:
            return self.exchanges[name]
        except KeyError:
            raise LookupError(f"exchange {name!r} is not declared") from None

    def queue(self, name: str) -> Queue:
        try:
            return self.queues[name]
        except KeyError:
            raise LookupError(f"queue {name!r} does not exist") from None

    def private_queue(self, max_length: int) -> Queue:
        name = f"amq.gen-{next(_seq)}"
        queue = self.queues[name] = Queue(self, name, max_length=max_length)
        return queue

    def route(self, exchange: str, key: str, message: Message) -> None:
        ex = self.exchanges.get(exchange)
        if ex is None:
            return
        for i, queue in enumerate(ex.route(key)):
            # Each queue gets its own copy: delivery counts are per queue.
            queue.put(message if i == 0 else message.copy())

    def spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel_tasks(self) -> None:
        for task in tuple(self._tasks):
            task.cancel()
