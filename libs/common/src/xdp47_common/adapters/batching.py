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

It runs over a ``ConsumerChannel`` (``adapters.deliveries``), so RabbitMQ and the
in-memory bus run the very same rules (``adapters.work_consumer`` gives it a
channel of its own). Its counters: ``adapters.consumer_metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Generic, TypeVar

from xdp47_common import tracing
from xdp47_common.adapters.consumer_metrics import (
    BATCH_SIZE,
    HANDLER_FAILURES,
    MESSAGES_CONSUMED,
    MESSAGES_DEAD_LETTERED,
)
from xdp47_common.adapters.deliveries import ConsumerChannel, Incoming
from xdp47_common.bus import (
    ConsumerOptions,
    Decode,
    Handle,
    PoisonMessage,
    classify_decode_error,
)

__all__ = ["BatchConsumer"]

T = TypeVar("T")

log = logging.getLogger(__name__)


class BatchConsumer(Generic[T]):
    """Consume ``queue_name`` in batches of up to ``max_batch`` messages.

    A batch is cut when ``max_batch`` messages are buffered, when the next one
    would take its bodies past ``max_batch_bytes`` (that one opens the next
    batch), or when ``max_wait_ms`` passed since its first message. Keep
    ``prefetch >= max_batch`` or batches never fill. The consumer owns no
    connection: the caller opens and closes the channel (a robust channel
    resubscribes this consumer after a reconnect).
    """

    def __init__(
        self,
        channel: ConsumerChannel,
        queue_name: str,
        decode: Decode[T],
        handle: Handle[T],
        options: ConsumerOptions = ConsumerOptions(),
    ) -> None:
        self._channel = channel
        self.queue_name = queue_name
        self._decode = decode
        self._handle = handle
        self._options = options
        self._buffer: asyncio.Queue[Incoming] = asyncio.Queue()
        # Taken from the buffer but past the previous batch's byte bound: the
        # first message of the next batch.
        self._carried: Incoming | None = None
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
        return (
            self._started
            and not self._holding
            and self._carried is None
            and self._buffer.empty()
        )

    async def start(self) -> None:
        """Subscribe and start the batching loop; the queue must exist."""
        await self._channel.consume(
            self.queue_name, self._options.prefetch, self._buffer.put
        )
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
        await self._channel.cancel()
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

    async def _next_batch(self) -> list[Incoming]:
        first, self._carried = self._carried, None
        batch = [first if first is not None else await self._buffer.get()]
        self._holding = True
        limit = self._options.max_batch_bytes
        size = len(batch[0].body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._options.max_wait_ms / 1000
        while len(batch) < self._options.max_batch:
            if not self._buffer.empty():
                message = self._buffer.get_nowait()
            else:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    message = await asyncio.wait_for(self._buffer.get(), remaining)
                except TimeoutError:
                    break
            if limit is not None and size + len(message.body) > limit:
                self._carried = message
                break
            batch.append(message)
            size += len(message.body)
        return batch

    async def _process(self, batch: Sequence[Incoming]) -> None:
        decoded: list[tuple[Incoming, T]] = []
        for message in batch:
            if not message.live:
                continue  # delivered on a channel that closed: it comes again
            if len(message.body) > self._options.max_message_bytes:
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

    async def _handle_retrying(self, pairs: Sequence[tuple[Incoming, T]]) -> None:
        delay = 0.05
        while True:
            try:
                # Trace hook (xdp47_common.tracing): the batch's process span
                # from its messages' headers; a null context when tracing is off.
                with tracing.consuming(self.queue_name, (m.headers for m, _ in pairs)):
                    await self._handle([item for _, item in pairs])
                return
            except Exception as exc:
                if not self._options.is_transient(exc):
                    raise
                HANDLER_FAILURES.labels(self.queue_name, "transient").inc()
                if not any(m.live for m, _ in pairs):
                    # The broker took the deliveries back; stop holding them.
                    log.warning("dropping stale batch on %s: %r", self.queue_name, exc)
                    return
                log.warning("transient failure on %s: %r", self.queue_name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._options.max_backoff)

    async def _ack(self, pairs: Sequence[tuple[Incoming, T]]) -> None:
        live = [m for m, _ in pairs if m.live]
        if not live:
            return
        # Safe to ack "up to" the last tag: the loop is sequential and the
        # buffer is FIFO, so every lower tag on this channel is settled or
        # in this batch. Only when all deliveries share one channel.
        if len({m.channel_key for m in live}) == 1:
            acked = await live[-1].ack(multiple=True)
        else:
            acked = all([await m.ack() for m in live])
        if not acked:
            log.warning("ack lost on %s (redelivered later)", self.queue_name)
            return
        MESSAGES_CONSUMED.labels(self.queue_name).inc(len(live))

    async def _nack(self, pairs: Sequence[tuple[Incoming, T]]) -> None:
        for message, _ in pairs:
            if message.live:
                await message.requeue()

    async def _dead_letter(self, message: Incoming, reason: str) -> None:
        log.warning(
            "dead-lettering message %s from %s: %s",
            message.message_id,
            self.queue_name,
            reason,
        )
        if not await message.dead_letter():
            return  # redelivered later, and rejected again then
        MESSAGES_DEAD_LETTERED.labels(self.queue_name, reason).inc()
        if self._options.on_poison is not None:
            self._options.on_poison(message, reason)
