"""The outbox on PostgreSQL and RabbitMQ: rows exist exactly when the deciding
transaction commits, the relay publishes exactly those (with confirms) and marks
them, and two relays at once publish each row once.

A database of its own, so the session scheduler's relay does not take the rows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aio_pika.abc import AbstractRobustConnection

from tests.conftest import migrated_database
from xdp47_common.adapters.amqp import AmqpPublisher
from xdp47_common.adapters.pg import create_pool
from xdp47_common.clock import utcnow
from xdp47_common.messages import RolloutEvent
from xdp47_common.messages.envelope import Envelope, PreparedEnvelope
from xdp47_common.topology import Topology
from xdp47_scheduler.pg import PgRolloutStore
from xdp47_scheduler.pg.outbox import OutboxListener, PgOutbox
from xdp47_scheduler.relay import OutboxRelay

from .conftest import EventLog
from .support import wait_for

pytestmark = pytest.mark.integration


class Boom(Exception):
    pass


async def write_and_fail(store: PgRolloutStore, events: list[RolloutEvent]) -> None:
    async with store.transaction() as tx:
        await tx.enqueue_events(events)
        raise Boom


@pytest.fixture
async def own_db(server_db_url: str) -> AsyncIterator[str]:
    async with migrated_database(server_db_url, "xdp47_outbox") as url:
        yield url


@pytest.fixture
async def own_pool(own_db: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    pool = await create_pool(own_db, min_size=1, max_size=6)
    yield pool
    await pool.close()


def make_events(n: int, tenant: str = "acme") -> list[RolloutEvent]:
    rid = uuid.uuid4()
    return [
        RolloutEvent(tenant=tenant, rollout_id=rid, event="wave_started", wave=i)
        for i in range(1, n + 1)
    ]


class SlowRecorder:
    """A publisher that yields to the other relay on every publish."""

    def __init__(self) -> None:
        self.sent: list[uuid.UUID] = []

    async def publish(
        self, exchange: str, routing_key: str, envelope: Envelope | PreparedEnvelope
    ) -> None:
        await asyncio.sleep(0.001)
        self.sent.append(envelope.message_id)


def relay(pool: asyncpg.Pool[Any], publisher: Any, batch: int = 100) -> OutboxRelay:
    return OutboxRelay(
        PgOutbox(pool),
        publisher,
        Topology("outbox"),
        clock=utcnow,
        sweep=0.2,
        retention=3600,
        batch=batch,
    )


async def test_rows_exist_only_when_the_transaction_commits(
    own_pool: asyncpg.Pool[Any],
) -> None:
    store = PgRolloutStore(own_pool)
    kept, dropped = make_events(2), make_events(3)
    async with store.transaction() as tx:
        await tx.enqueue_events(kept)
        await tx.enqueue_events(kept[:1])  # the same event id again: one row
    with pytest.raises(Boom):
        await write_and_fail(store, dropped)
    rows = await own_pool.fetch("SELECT message_id, sent_at FROM outbox ORDER BY id")
    assert [r["message_id"] for r in rows] == [e.message_id for e in kept]
    assert all(r["sent_at"] is None for r in rows)


async def test_a_commit_wakes_the_listening_relays_and_a_rollback_does_not(
    own_db: str, own_pool: asyncpg.Pool[Any]
) -> None:
    woken = asyncio.Event()
    listener = OutboxListener(own_db, woken.set)
    await listener.ensure()
    try:
        assert woken.is_set()  # a new listener sweeps once: rows may wait
        woken.clear()
        store = PgRolloutStore(own_pool)
        with pytest.raises(Boom):
            await write_and_fail(store, make_events(1))
        # A notification of the rolled-back one would have arrived by now.
        await asyncio.sleep(0.5)
        assert not woken.is_set()
        async with store.transaction() as tx:
            await tx.enqueue_events(make_events(1))
        await asyncio.wait_for(woken.wait(), 10)
    finally:
        await listener.close()


async def test_the_relay_publishes_exactly_the_committed_events_to_rabbitmq(
    own_pool: asyncpg.Pool[Any],
    sched_connection: AbstractRobustConnection,
    sched_topology: Topology,
    events: EventLog,
) -> None:
    store = PgRolloutStore(own_pool)
    committed = make_events(3)
    async with store.transaction() as tx:
        await tx.enqueue_events(committed)
    with pytest.raises(Boom):
        await write_and_fail(store, make_events(2))
    publisher = AmqpPublisher(sched_connection, sched_topology)
    await publisher.start()
    try:
        r = OutboxRelay(
            PgOutbox(own_pool),
            publisher,
            sched_topology,
            clock=utcnow,
            sweep=0.2,
            retention=3600,
        )
        assert await r.drain() == 3
        assert await r.drain() == 0
    finally:
        await publisher.close()
    rid = committed[0].rollout_id

    async def all_three() -> None:
        assert len(events.of(rid)) == 3

    await wait_for(all_three)
    assert [e.message_id for e in events.of(rid)] == [e.message_id for e in committed]
    assert [e.model_dump() for e in events.of(rid)] == [
        e.model_dump() for e in committed
    ]
    unsent = await own_pool.fetchval(
        "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
    )
    assert unsent == 0


async def test_two_relays_at_once_publish_each_row_once(
    own_pool: asyncpg.Pool[Any],
) -> None:
    store = PgRolloutStore(own_pool)
    written = make_events(300)
    async with store.transaction() as tx:
        await tx.enqueue_events(written)
    first, second = SlowRecorder(), SlowRecorder()
    counts = await asyncio.gather(
        relay(own_pool, first, batch=20).drain(),
        relay(own_pool, second, batch=20).drain(),
    )
    assert sum(counts) == 300
    assert first.sent, "the second relay took every row"
    assert second.sent, "the first relay took every row"
    both = first.sent + second.sent
    assert len(both) == len(set(both)) == 300
    assert set(both) == {e.message_id for e in written}


async def test_sent_rows_are_pruned_after_the_retention(
    own_pool: asyncpg.Pool[Any],
) -> None:
    store = PgRolloutStore(own_pool)
    async with store.transaction() as tx:
        await tx.enqueue_events(make_events(2))
    await relay(own_pool, SlowRecorder()).drain()
    async with store.transaction() as tx:
        await tx.enqueue_events(make_events(1))  # unsent: never pruned
    outbox = PgOutbox(own_pool)
    assert await outbox.prune(utcnow() - timedelta(hours=1)) == 0
    assert await outbox.prune(utcnow() + timedelta(seconds=1)) == 2
    assert await outbox.unsent() == 1
