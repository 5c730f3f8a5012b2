"""The message-bus port: what the services need from a broker, as Protocols.

Three roles, each used by a service today:

- :class:`Publisher`: publish an envelope to (exchange, routing key) and return
  only once the broker took responsibility for it; otherwise raise
  :class:`PublishFailed` (ingest answers 503, the api 503, the scheduler logs);
- :class:`WorkQueues`: consume a durable work queue in batches with the
  at-least-once contract of ``BatchConsumer`` (undecodable → dead queue, ack
  after the handler returned, a failing handler → requeue, and the queue's
  delivery limit dead-letters a message that always fails);
- :class:`EventFanout`: a private, auto-deleted subscription to a topic exchange
  whose bindings the subscriber changes (the UI's live rollout events).

:class:`Bus` is all of them plus a lifecycle, readiness and queue depths. Two
implementations pass one contract suite (``tests/contract/bus``):
``xdp47_common.adapters.amqp_bus.AmqpBus`` (RabbitMQ) and
``xdp47_common.adapters.memory.InMemoryBus`` (one process, for the embedded demo
and fast tests). This module imports neither aio-pika nor anything else of the
server stack.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pydantic import ValidationError

from xdp47_common.messages.envelope import Envelope, PreparedEnvelope
from xdp47_common.topology import Topology

__all__ = [
    "Bus",
    "ConsumerOptions",
    "Decode",
    "Delivery",
    "EventFanout",
    "EventSubscription",
    "Handle",
    "OnEvent",
    "OnPoison",
    "PoisonMessage",
    "PublishFailed",
    "Publisher",
    "QueueDepth",
    "QueueInspector",
    "WorkConsumer",
    "WorkQueues",
    "classify_decode_error",
    "default_is_transient",
]

T = TypeVar("T")


class PublishFailed(RuntimeError):
    """The broker did not confirm a publish in time, or refused it."""


class PoisonMessage(ValueError):
    """A decoder raises this to dead-letter a message with a named reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def classify_decode_error(exc: BaseException) -> str:
    """Name why a body could not be decoded: the ``reason`` of a dead-letter."""
    if isinstance(exc, PoisonMessage):
        return exc.reason
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False)
        if any(e["type"] == "json_invalid" for e in errors):
            return "bad_json"
        if any(
            e["type"] in ("union_tag_invalid", "union_tag_not_found")
            or e["loc"][:1] == ("type",)
            for e in errors
        ):
            return "unknown_type"
        return "invalid"
    if isinstance(exc, UnicodeDecodeError | ValueError):
        return "bad_json"
    return "undecodable"


def default_is_transient(exc: BaseException) -> bool:
    """Errors a consumer retries in place by default (a connection went away)."""
    return isinstance(exc, OSError | TimeoutError)


class Delivery(Protocol):
    """One delivered message as a handler of raw deliveries sees it."""

    @property
    def body(self) -> bytes: ...

    @property
    def message_id(self) -> str | None: ...

    @property
    def type(self) -> str | None: ...

    @property
    def routing_key(self) -> str | None: ...


Decode = Callable[[bytes], T]
Handle = Callable[[list[T]], Awaitable[None]]
OnPoison = Callable[[Delivery, str], None]
OnEvent = Callable[[Delivery], Awaitable[None]]


class Publisher(Protocol):
    async def publish(
        self, exchange: str, routing_key: str, envelope: Envelope | PreparedEnvelope
    ) -> None:
        """Publish persistently; return once confirmed. A ``PreparedEnvelope``
        goes out as its ``body``, the same bytes its model would give.

        Raises:
            PublishFailed: no confirm in time, a refusal, or no connection.
        """
        ...


class WorkConsumer(Protocol):
    """A running batch consumer of one work queue."""

    @property
    def queue_name(self) -> str: ...

    @property
    def idle(self) -> bool:
        """True while no delivery is in hand: nothing buffered, no batch being
        collected or handled (false before ``start``)."""
        ...

    async def start(self) -> None:
        """Subscribe and start handling; the queue must exist."""
        ...

    async def wait(self) -> None:
        """Wait until the consumer ends (only by ``stop`` or a bug)."""
        ...

    async def stop(self) -> None:
        """Stop; deliveries not yet acked go back to the queue."""
        ...


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    """How a batch consumer collects, bounds and retries (the defaults suit a
    work queue whose handler writes to PostgreSQL).

    Attributes:
        max_batch: most messages per ``handle`` call.
        max_batch_bytes: most body bytes per ``handle`` call (None: no bound);
            a message that would cross it waits for the next batch, and a
            batch always takes its first message whatever its size.
        max_wait_ms: longest wait for a batch to fill after its first message.
        prefetch: most unacked deliveries held (``>= max_batch`` or batches
            never fill).
        on_poison: called with each dead-lettered delivery and its reason.
        max_message_bytes: larger bodies are dead-lettered as ``oversized``.
        is_transient: errors retried in place (deliveries kept unacked) instead
            of requeued.
        max_backoff: longest pause, in seconds, between in-place retries.
    """

    max_batch: int = 500
    # A count of messages does not bound what a batch holds once a message is
    # itself a batch (ingest's HeartbeatBatch: up to 256 heartbeats, ~100 kB):
    # 500 of those decode to ~330 MiB of objects at once, a high-water mark the
    # process keeps. Bodies are the one size known before decoding.
    max_batch_bytes: int | None = None
    max_wait_ms: float = 50
    prefetch: int = 1000
    on_poison: OnPoison | None = None
    max_message_bytes: int = 1 << 20
    is_transient: Callable[[BaseException], bool] = default_is_transient
    max_backoff: float = 5.0

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.prefetch < 1:
            raise ValueError("max_batch and prefetch must be at least 1")
        if self.max_batch_bytes is not None and self.max_batch_bytes < 1:
            raise ValueError("max_batch_bytes must be at least 1")


class WorkQueues(Protocol):
    def batch_consumer(
        self,
        queue_name: str,
        decode: Decode[T],
        handle: Handle[T],
        options: ConsumerOptions = ConsumerOptions(),
    ) -> WorkConsumer:
        """A consumer of ``queue_name`` in batches (not started).

        Args:
            queue_name: an existing work queue (or dead queue).
            decode: bytes to message; raising dead-letters the message.
            handle: commits a batch; every message of it is acked after it
                returns; raising requeues (one message at a time on a retry),
                and the delivery limit dead-letters a message that always fails.
            options: batching, bounds and retries.
        """
        ...


class EventSubscription(Protocol):
    """A private queue bound to an events exchange, gone when closed."""

    async def bind(self, pattern: str) -> None:
        """Also receive messages whose key matches ``pattern`` (``*``, ``#``)."""
        ...

    async def unbind(self, pattern: str) -> None: ...

    async def close(self) -> None: ...


class EventFanout(Protocol):
    async def subscribe(
        self, exchange: str, on_event: OnEvent, *, max_length: int = 10_000
    ) -> EventSubscription:
        """Open a subscription with no binding yet; ``on_event`` gets each message
        (no ack: events are notifications, and the oldest are dropped beyond
        ``max_length`` waiting ones)."""
        ...


@dataclass(frozen=True)
class QueueDepth:
    messages: int
    consumers: int


class QueueInspector(Protocol):
    async def queue_depth(self, queue_name: str) -> QueueDepth:
        """Ready messages and consumers of a queue.

        Raises:
            LookupError: no such queue (or the broker could not say).
        """
        ...


class Bus(Publisher, WorkQueues, EventFanout, QueueInspector, Protocol):
    """Everything a service takes from the broker, with a lifecycle."""

    @property
    def topology(self) -> Topology: ...

    @property
    def is_ready(self) -> bool:
        """True while publishing can succeed (for readiness probes)."""
        ...

    async def start(self) -> None:
        """Connect and declare the topology, idempotently; starting twice is fine."""
        ...

    async def close(self) -> None:
        """Stop every consumer and subscription opened through this bus; close."""
        ...
