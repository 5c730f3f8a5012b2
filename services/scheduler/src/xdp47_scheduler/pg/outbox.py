"""The outbox on PostgreSQL: rows written in the deciding transaction, taken by
relays with ``FOR UPDATE SKIP LOCKED``, woken by ``NOTIFY xdp47_outbox``.

``enqueue`` runs in the caller's transaction (``PgRolloutTx.enqueue_events``) and
sends the notification with it: PostgreSQL delivers it at the commit, never for
a rolled-back transaction. ``PgOutbox`` is the relay's side (migration 0021).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from xdp47_common.adapters.planning import Connection
from xdp47_common.messages import RolloutEvent
from xdp47_common.topology import Topology
from xdp47_scheduler.ports import Outbox, OutboxRow, Send

__all__ = ["CHANNEL", "OutboxListener", "PgOutbox", "enqueue"]

log = logging.getLogger(__name__)

# The NOTIFY channel a commit that wrote outbox rows signals on.
CHANNEL = "xdp47_outbox"

_INSERT = """
INSERT INTO outbox (message_id, tenant, routing_key, payload)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
ON CONFLICT (message_id) DO NOTHING
"""
_NOTIFY = f"SELECT pg_notify('{CHANNEL}', '')"
_TAKE = """
SELECT id, message_id, tenant, routing_key, payload FROM outbox
WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
"""
_MARK = "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])"
_PRUNE = "DELETE FROM outbox WHERE sent_at < $1"
_UNSENT = "SELECT count(*) FROM outbox WHERE sent_at IS NULL"


async def enqueue(conn: Connection, events: Sequence[RolloutEvent]) -> None:
    """Write ``events`` in the caller's transaction, and wake the relays at its
    commit."""
    if not events:
        return
    await conn.execute(
        _INSERT,
        [e.message_id for e in events],
        [e.tenant for e in events],
        [Topology.rollout_event_key(e.tenant, e.event) for e in events],
        [e.model_dump_json() for e in events],
    )
    await conn.execute(_NOTIFY)


class PgOutbox(Outbox):
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def relay(self, limit: int, send: Send) -> int:
        failed: Exception | None = None
        sent: list[int] = []
        async with self._pool.acquire() as conn, conn.transaction():
            for r in await conn.fetch(_TAKE, limit):
                try:
                    await send(
                        OutboxRow(
                            id=r["id"],
                            message_id=r["message_id"],
                            tenant=r["tenant"],
                            routing_key=r["routing_key"],
                            payload=r["payload"],
                        )
                    )
                except Exception as exc:
                    failed = exc
                    break
                sent.append(r["id"])
            if sent:
                # Committed even when a later send failed: those went out.
                await conn.execute(_MARK, sent)
        if failed is not None:
            raise failed
        return len(sent)

    async def prune(self, older_than: datetime) -> int:
        status = await self._pool.execute(_PRUNE, older_than)
        return int(status.split()[-1])

    async def unsent(self) -> int:
        return int(await self._pool.fetchval(_UNSENT))


class OutboxListener:
    """``LISTEN xdp47_outbox`` on a connection of its own; ``ensure`` (called
    by every sweep) opens it again after a loss."""

    def __init__(self, dsn: str, wake: Callable[[], None]) -> None:
        self._dsn = dsn
        self._wake = wake
        self._conn: asyncpg.Connection[Any] | None = None

    def _on_notify(self, *_: object) -> None:
        self._wake()

    async def ensure(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            return
        try:
            conn = await asyncpg.connect(self._dsn, timeout=5)
            await conn.add_listener(CHANNEL, self._on_notify)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            log.warning("outbox LISTEN unavailable (sweeps go on): %s", exc)
            return
        self._conn = conn
        # Rows committed while no one listened: the relay's sweep takes them.
        self._wake()

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
