"""Batch consumption from a work queue: decode, handle, ack after commit.

Owns the consumer side of the at-least-once contract (DESIGN principle 3):

- a message the decoder cannot read (bad JSON, unknown ``type``, too big) is
  rejected without requeue, so the quorum queue dead-letters it to its ``.dead``
  queue, and counted; one bad message never stops the consumer;
- the handler gets a list of decoded messages and commits them; every message of
  the batch is acked only after it returns;
- a transient failure (the database is down) is retried in-process with backoff
  while the deliveries stay unacked, so an outage does not burn delivery counts;
- any other failure nacks with requeue; the batch is then retried one message at a
  time so that good messages are not held hostage, and a message that always fails
  reaches the queue's delivery limit and is dead-lettered by the broker;
- an ack on a channel that was replaced by a reconnect is skipped: the broker
  redelivers and consumers are idempotent (reliability note M9).

Needs the ``amqp`` extra (aio-pika and prometheus-client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, ConsumerTag
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from prometheus_client import Counter, Histogram

from xdp47_common import tracing
from xdp47_common.bus import (
    PoisonMessage,
    classify_decode_error,
    default_is_transient,
)
from xdp47_common.plumbing_metrics import PLUMBING

__all__ = [
    "BATCH_SIZE",
    "MESSAGES_CONSUMED",
    "MESSAGES_DEAD_LETTERED",
    "BatchConsumer",
    "PoisonMessage",
    "classify_decode_error",
    "consume_batches",
]

T = TypeVar("T")

log = logging.getLogger(__name__)

MESSAGES_CONSUMED = Counter(
    "xdp47_messages_consumed_total",
    "Messages handled and acked after the handler committed.",
    ["queue"],
    registry=PLUMBING,
)
MESSAGES_DEAD_LETTERED = Counter(
    "xdp47_messages_dead_lettered_total",
    "Messages rejected without requeue by the consumer (the broker dead-letters "
    "them); the broker's own delivery-limit dead-lettering is not counted here.",
    ["queue", "reason"],
    registry=PLUMBING,
)
HANDLER_FAILURES = Counter(
    "xdp47_consumer_handler_failures_total",
    "Handler calls that raised, by kind (transient: retried in place).",
    ["queue", "kind"],
    registry=PLUMBING,
)
FAULT_REQUEUES = Counter(
    "xdp47_consumer_fault_requeues_total",
    "Deliveries nacked back unprocessed by test-only fault injection "
    "(XDP47_FAULT_REDELIVER_SHARE); always 0 in production.",
    ["queue"],
    registry=PLUMBING,
)
BATCH_SIZE = Histogram(
    "xdp47_consumer_batch_size",
    "Decoded messages per handler call.",
    ["queue"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
    registry=PLUMBING,
)

Decode = Callable[[bytes], T]
Handle = Callable[[list[T]], Awaitable[None]]
OnPoison = Callable[[AbstractIncomingMessage, str], None]


_default_is_transient = default_is_transient


def _is_live(message: AbstractIncomingMessage) -> bool:
    """False when the delivery's channel closed: its tag is meaningless now."""
    try:
        return not message.channel.is_closed
    except ChannelInvalidStateError:
        return False


class BatchConsumer(Generic[T]):
    """Consume ``queue_name`` in batches of up to ``max_batch`` messages.

    A batch is cut when ``max_batch`` messages are buffered or ``max_wait_ms``
    passed since its first message. Keep ``prefetch >= max_batch`` or batches never
    fill. The consumer owns no connection: the caller opens and closes the channel
    (a robust channel resubscribes this consumer after a reconnect).
    """

    def __init__(
        self,
        channel: AbstractChannel,
        queue_name: str,
        decode: Decode[T],
        handle: Handle[T],
        *,
        max_batch: int = 500,
        max_wait_ms: float = 50,
        prefetch: int = 1000,
        on_poison: OnPoison | None = None,
        max_message_bytes: int = 1 << 20,
        is_transient: Callable[[BaseException], bool] = _default_is_transient,
        max_backoff: float = 5.0,
        requeue_share: float = 0.0,
    ) -> None:
        if max_batch < 1 or prefetch < 1:
            raise ValueError("max_batch and prefetch must be at least 1")
        self._channel = channel
        self.queue_name = queue_name
        self._decode = decode
        self._handle = handle
        self._max_batch = max_batch
        self._max_wait = max_wait_ms / 1000
        self._prefetch = prefetch
        self._on_poison = on_poison
        self._max_message_bytes = max_message_bytes
        self._is_transient = is_transient
        self._max_backoff = max_backoff
        # Test-only fault injection (XDP47_FAULT_REDELIVER_SHARE, refused in
        # production): this share of deliveries is nacked back unprocessed.
        self._requeue_share = requeue_share
        self._rng = random.Random()
        self._buffer: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._tag: ConsumerTag | None = None
        self._task: asyncio.Task[None] | None = None
        # The batch being handled runs as its own task so that stop() can let it
        # finish (commit and ack) instead of cancelling it half-way.
        self._current: asyncio.Task[None] | None = None
        self._stopping = False
        # A batch is in hand from its first delivery until handled (acked).
        self._holding = False
        self._started = False

    @property
    def idle(self) -> bool:
        """No delivery in hand: none buffered, none in a batch being collected
        or handled."""
        return self._started and not self._holding and self._buffer.empty()

    async def start(self) -> None:
        """Subscribe and start the batching loop; the queue must exist."""
        await self._channel.set_qos(prefetch_count=self._prefetch)
        queue = await self._channel.get_queue(self.queue_name, ensure=True)
        self._tag = await queue.consume(self._buffer.put)
        self._started = True
        self._task = asyncio.create_task(self._run(), name=f"consume:{self.queue_name}")

    async def wait(self) -> None:
        """Wait until the loop ends (only by ``stop`` or a bug; errors propagate)."""
        if self._task is not None:
            await self._task

    async def stop(self, *, drain_timeout: float = 10.0) -> None:
        """Unsubscribe, let the batch in progress finish, then stop.

        The batch being handled gets up to ``drain_timeout`` seconds to commit and
        ack; buffered deliveries that no batch took yet stay unacked and return to
        the queue when the channel closes.
        """
        self._stopping = True
        if self._tag is not None and not self._channel.is_closed:
            with contextlib.suppress(AMQPError, ChannelInvalidStateError):
                queue = await self._channel.get_queue(self.queue_name, ensure=False)
                await queue.cancel(self._tag)
        self._tag = None
        current = self._current
        if current is not None and not current.done():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(current), drain_timeout)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if current is not None and not current.done():
            current.cancel()

    async def _run(self) -> None:
        while not self._stopping:
            batch = await self._next_batch()
            if self._stopping:
                return
            self._current = asyncio.create_task(self._process(batch))
            try:
                await asyncio.shield(self._current)
            finally:
                self._holding = False

    async def _next_batch(self) -> list[AbstractIncomingMessage]:
        batch = [await self._buffer.get()]
        self._holding = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_wait
        while len(batch) < self._max_batch:
            if not self._buffer.empty():
                batch.append(self._buffer.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._buffer.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _process(self, batch: Sequence[AbstractIncomingMessage]) -> None:
        decoded: list[tuple[AbstractIncomingMessage, T]] = []
        for message in batch:
            if not _is_live(message):
                continue  # delivered on a channel that closed: it comes again
            if self._requeue_share and self._rng.random() < self._requeue_share:
                await self._fault_requeue(message)
                continue
            if len(message.body) > self._max_message_bytes:
                await self._dead_letter(message, "oversized")
                continue
            try:
                decoded.append((message, self._decode(message.body)))
            except Exception as exc:  # a decoder may raise anything on garbage
                await self._dead_letter(message, classify_decode_error(exc))
        if not decoded:
            return
        BATCH_SIZE.labels(self.queue_name).observe(len(decoded))
        try:
            await self._handle_retrying(decoded)
        except Exception as exc:
            if len(decoded) == 1 and isinstance(exc, PoisonMessage):
                # The handler named it poison (e.g. an unknown tenant).
                await self._dead_letter(decoded[0][0], exc.reason)
                return
            HANDLER_FAILURES.labels(self.queue_name, "permanent").inc()
            log.exception("handler failed on %s (%d)", self.queue_name, len(decoded))
            if len(decoded) == 1:
                await self._nack(decoded)
                return
            # One message may be the culprit: settle the batch one at a time.
            for pair in decoded:
                try:
                    await self._handle_retrying([pair])
                except PoisonMessage as poison:
                    await self._dead_letter(pair[0], poison.reason)
                except Exception:
                    log.exception("handler failed on message %s", pair[0].message_id)
                    await self._nack([pair])
                else:
                    await self._ack([pair])
            return
        await self._ack(decoded)

    async def _handle_retrying(
        self, pairs: Sequence[tuple[AbstractIncomingMessage, T]]
    ) -> None:
        delay = 0.05
        while True:
            try:
                # Trace hook (xdp47_common.tracing): the batch's process span
                # from its messages' headers; a null context when tracing is off.
                with tracing.consuming(self.queue_name, (m.headers for m, _ in pairs)):
                    await self._handle([item for _, item in pairs])
                return
            except Exception as exc:
                if not self._is_transient(exc):
                    raise
                HANDLER_FAILURES.labels(self.queue_name, "transient").inc()
                if not any(_is_live(m) for m, _ in pairs):
                    # The broker took the deliveries back; stop holding them.
                    log.warning("dropping stale batch on %s: %r", self.queue_name, exc)
                    return
                log.warning("transient failure on %s: %r", self.queue_name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)

    async def _ack(self, pairs: Sequence[tuple[AbstractIncomingMessage, T]]) -> None:
        live = [m for m, _ in pairs if _is_live(m)]
        try:
            # Safe to ack "up to" the last tag: the loop is sequential and the
            # buffer is FIFO, so every lower tag on this channel is settled or
            # in this batch. Only when all deliveries share one channel.
            if len({id(m.channel) for m in live}) == 1:
                await live[-1].ack(multiple=True)
            else:
                for m in live:
                    await m.ack()
        except (ChannelInvalidStateError, AMQPError) as exc:
            log.warning("ack lost on %s (redelivered later): %r", self.queue_name, exc)
            return
        MESSAGES_CONSUMED.labels(self.queue_name).inc(len(live))

    async def _nack(self, pairs: Sequence[tuple[AbstractIncomingMessage, T]]) -> None:
        for message, _ in pairs:
            if not _is_live(message):
                continue
            with contextlib.suppress(ChannelInvalidStateError, AMQPError):
                await message.nack(requeue=True)

    async def _fault_requeue(self, message: AbstractIncomingMessage) -> None:
        with contextlib.suppress(ChannelInvalidStateError, AMQPError):
            await message.nack(requeue=True)
            FAULT_REQUEUES.labels(self.queue_name).inc()

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str) -> None:
        log.warning(
            "dead-lettering message %s from %s: %s",
            message.message_id,
            self.queue_name,
            reason,
        )
        try:
            await message.reject(requeue=False)
        except (ChannelInvalidStateError, AMQPError):
            return  # redelivered later, and rejected again then
        MESSAGES_DEAD_LETTERED.labels(self.queue_name, reason).inc()
        if self._on_poison is not None:
            self._on_poison(message, reason)


async def consume_batches(
    channel: AbstractChannel,
    queue_name: str,
    decode: Decode[T],
    handle: Handle[T],
    *,
    max_batch: int = 500,
    max_wait_ms: float = 50,
    prefetch: int = 1000,
    on_poison: OnPoison | None = None,
    max_message_bytes: int = 1 << 20,
    is_transient: Callable[[BaseException], bool] = _default_is_transient,
) -> None:
    """Consume ``queue_name`` in batches until cancelled.

    Args:
        channel: an open (preferably robust) channel, used only by this consumer.
        queue_name: an existing work queue.
        decode: bytes to message; raising dead-letters the message.
        handle: commits a batch; raising nacks it (see the module docstring).
        max_batch: most messages per ``handle`` call.
        max_wait_ms: longest wait for a batch to fill after its first message.
        prefetch: unacked deliveries the broker may push (``>= max_batch``).
        on_poison: called with each dead-lettered message and its reason.
        max_message_bytes: larger bodies are dead-lettered as ``oversized``.
        is_transient: errors retried in place instead of nacked.
    """
    consumer = BatchConsumer(
        channel,
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
    await consumer.start()
    try:
        await consumer.wait()
    finally:
        await consumer.stop()
