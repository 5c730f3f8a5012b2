"""The heartbeat consumer: batches from ``scheduler.heartbeats`` into PostgreSQL.

The queue carries ingest's micro-batches (``HeartbeatBatch``; a single
``HeartbeatReceived`` from an older ingest decodes as a batch of one); a consumer
batch of them is written at once. One transaction per consumer batch:
``write_heartbeats`` and then the pluggable ``after_write`` (the rollout engine
updates rollout targets there) commit together, and the batch is acked only after
that commit. ``after_commit`` runs after the commit and before the ack (the
engine asks for the gates the batch moved; they are judged in tasks of their
own). A database outage is retried in place (the deliveries stay unacked); anything else
nacks, and the queue's delivery limit dead-letters a message that can never be
written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

import asyncpg
from prometheus_client import Counter

from xdp47_common.adapters.pg import is_transient_db_error
from xdp47_common.bus import ConsumerOptions, PoisonMessage, WorkConsumer, WorkQueues
from xdp47_common.messages import HeartbeatBatch, decode_heartbeats
from xdp47_common.topology import Topology
from xdp47_scheduler.heartbeats import (
    Connection,
    HeartbeatWriteResult,
    write_heartbeats,
)

__all__ = ["AfterCommit", "AfterWrite", "HeartbeatConsumer"]

AfterWrite: TypeAlias = Callable[[Connection, HeartbeatWriteResult], Awaitable[None]]
AfterCommit: TypeAlias = Callable[[HeartbeatWriteResult], Awaitable[None]]

# Heartbeats (not messages) in committed batches: a benchmark compares it with the
# heartbeats ingest accepted. A redelivered batch counts again.
HEARTBEATS_COMMITTED = Counter(
    "xdp47_scheduler_heartbeats_committed_total",
    "Heartbeats in consumer batches whose transaction committed.",
)

_KNOWN_TENANTS = "SELECT id FROM tenants WHERE id = ANY($1::text[])"


async def _refuse_unknown_tenants(
    conn: Connection, batch: Sequence[HeartbeatBatch], known: set[str]
) -> None:
    """A heartbeat of a tenant that does not exist never came from ingest (which
    publishes only authenticated devices' heartbeats): it is poison. Raising
    splits the batch; alone, the message is dead-lettered as ``unknown_tenant``.

    ``known`` remembers the tenants found before, so a batch of known tenants
    costs no query: a tenant that is deleted later has no devices left, and the
    write ignores heartbeats of unknown devices anyway."""
    tenants = {m.tenant for m in batch} - known
    if not tenants:
        return
    found = {r["id"] for r in await conn.fetch(_KNOWN_TENANTS, sorted(tenants))}
    known |= found
    if tenants - found:
        raise PoisonMessage("unknown_tenant", ", ".join(sorted(tenants - found)))


class HeartbeatConsumer:
    """Consume heartbeats in batches; ``start`` / ``stop`` from the scheduler's main.

    ``queues`` is the bus (its ``WorkQueues`` role); the consumer is subscribed at
    ``start``, with a prefetch of its own.
    """

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        queues: WorkQueues,
        topology: Topology,
        *,
        batch_size: int = 500,
        batch_bytes: int | None = 1 << 20,
        prefetch: int = 1000,
        max_wait_ms: float = 50,
        after_write: AfterWrite | None = None,
        after_commit: AfterCommit | None = None,
    ) -> None:
        self._pool = pool
        self._after_write = after_write
        self._after_commit = after_commit
        self._queues = queues
        self._queue_name = topology.heartbeats_queue
        self._batch_size = batch_size
        # Messages are ingest's batches of up to 256 heartbeats: 500 of them
        # (a backlog after a burst or a slow transaction) decode to ~330 MiB of
        # objects in one transaction, and the process keeps that high-water
        # mark (freed pymalloc arenas and glibc heap are not given back). A byte
        # bound keeps a batch to a few thousand heartbeats whatever the backlog.
        self._batch_bytes = batch_bytes
        self._max_wait_ms = max_wait_ms
        self._prefetch = max(prefetch, batch_size)
        self._consumer: WorkConsumer | None = None
        self._known_tenants: set[str] = set()

    async def handle(self, batch: Sequence[HeartbeatBatch]) -> None:
        """Write the heartbeats of ``batch`` in one transaction (public for tests
        and replays)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await _refuse_unknown_tenants(conn, batch, self._known_tenants)
            result = await write_heartbeats(conn, batch)
            if self._after_write is not None:
                await self._after_write(conn, result)
        HEARTBEATS_COMMITTED.inc(sum(len(m.heartbeats) for m in batch))
        if self._after_commit is not None:
            await self._after_commit(result)

    async def start(self) -> None:
        self._consumer = self._queues.batch_consumer(
            self._queue_name,
            decode_heartbeats,
            self.handle,
            ConsumerOptions(
                max_batch=self._batch_size,
                max_batch_bytes=self._batch_bytes,
                max_wait_ms=self._max_wait_ms,
                prefetch=self._prefetch,
                is_transient=is_transient_db_error,
            ),
        )
        await self._consumer.start()

    @property
    def idle(self) -> bool:
        """No delivery in hand: nothing buffered, no batch collected or being
        written (``liveness``: the scheduler has caught up when the queue is
        empty too)."""
        return self._consumer is not None and self._consumer.idle

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def wait(self) -> None:
        if self._consumer is not None:
            await self._consumer.wait()
