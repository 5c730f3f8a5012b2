"""Fixtures of the scheduler tests: one in-process scheduler for the session on its
own AMQP namespace (``<session>_sched``), ingest in-process on the same namespace,
an event recorder on ``xdp47.events`` and a command sender."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from tests.support.amqp import delete_topology
from xdp47_common.adapters.amqp import AmqpPublisher, connect, declare_topology
from xdp47_common.messages import (
    AbortRollout,
    RetryRollout,
    RolloutCommand,
    RolloutEvent,
    StartRollout,
)
from xdp47_common.rollout import EffectivePolicy
from xdp47_common.topology import Topology
from xdp47_ingest import IngestSettings, create_app
from xdp47_scheduler.engine import RolloutEngine
from xdp47_scheduler.pg import PgRolloutStore
from xdp47_scheduler.service import Scheduler
from xdp47_scheduler.settings import SchedulerSettings


class EventLog:
    """Every rollout event published on the namespace, decoded."""

    def __init__(self) -> None:
        self.events: list[RolloutEvent] = []
        self.keys: list[str] = []

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process():
            self.events.append(RolloutEvent.model_validate_json(message.body))
            self.keys.append(message.routing_key or "")

    def of(self, rollout_id: uuid.UUID) -> list[RolloutEvent]:
        return [e for e in self.events if e.rollout_id == rollout_id]

    def names(self, rollout_id: uuid.UUID) -> list[str]:
        return [e.event for e in self.of(rollout_id)]


def scheduler_settings(db_url: str, amqp_url: str, namespace: str) -> SchedulerSettings:
    return SchedulerSettings(
        db_url=db_url,
        amqp_url=amqp_url,
        amqp_namespace=namespace,
        sched_interval=0.2,
        sched_grace=0,
        sched_wave_deadline=60,
        sched_offline_after=60,
        sched_skip_offline=True,
        sched_require_ok=True,
        publish_timeout=5,
        sched_batch_size=100,
    )


class NoEvents:
    """An event sink that drops what the engine publishes."""

    async def publish(self, events: Sequence[Any]) -> None:
        return None


@pytest.fixture
async def sql_engine(
    pool: Any,
) -> AsyncIterator[Callable[[EffectivePolicy], RolloutEngine]]:
    """Make engines over the PostgreSQL store (``defaults``: the scheduler's
    policy defaults), events dropped; each is drained at the test's end."""
    made: list[RolloutEngine] = []

    def make(defaults: EffectivePolicy) -> RolloutEngine:
        made.append(RolloutEngine(PgRolloutStore(pool), defaults, NoEvents()))
        return made[-1]

    yield make
    for engine in made:
        await engine.drain()


@pytest.fixture(scope="session")
def sched_topology(amqp_namespace: str) -> Topology:
    return Topology(f"{amqp_namespace}_sched")


@pytest.fixture(scope="session")
async def sched_connection(
    amqp_url: str, sched_topology: Topology
) -> AsyncIterator[AbstractRobustConnection]:
    conn = await connect(amqp_url)
    channel = await conn.channel()
    await declare_topology(channel, sched_topology)
    await channel.close()
    yield conn
    await delete_topology(conn, sched_topology)
    await conn.close()


@pytest.fixture(scope="session")
async def events(
    sched_connection: AbstractRobustConnection, sched_topology: Topology
) -> AsyncIterator[EventLog]:
    log = EventLog()
    channel = await sched_connection.channel()
    exchange = await channel.get_exchange(sched_topology.events)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange, routing_key="rollout.#")
    tag = await queue.consume(log.on_message)
    yield log
    with contextlib.suppress(Exception):
        await queue.cancel(tag)
    await channel.close()


@pytest.fixture(scope="session")
def sched_settings(
    db_url: str, amqp_url: str, sched_topology: Topology
) -> SchedulerSettings:
    return scheduler_settings(db_url, amqp_url, sched_topology.namespace)


@pytest.fixture(scope="session")
async def scheduler(
    sched_settings: SchedulerSettings, sched_connection: AbstractRobustConnection
) -> AsyncIterator[Scheduler]:
    s = Scheduler(sched_settings)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture(scope="session")
async def ingest(
    db_url: str, amqp_url: str, sched_topology: Topology, sched_connection: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        IngestSettings(
            db_url=db_url,
            amqp_url=amqp_url,
            amqp_namespace=sched_topology.namespace,
            publish_timeout=5.0,
        )
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ingest"
        ) as c,
    ):
        yield c


class Commands:
    def __init__(self, publisher: AmqpPublisher, topology: Topology) -> None:
        self._publisher = publisher
        self._topology = topology

    async def send(self, command: RolloutCommand) -> None:
        await self._publisher.publish(
            self._topology.commands, self._topology.command_key(command.type), command
        )

    async def start(self, tenant: str, rid: uuid.UUID) -> StartRollout:
        cmd = StartRollout(tenant=tenant, rollout_id=rid, requested_by="tests")
        await self.send(cmd)
        return cmd

    async def retry(self, tenant: str, rid: uuid.UUID) -> RetryRollout:
        cmd = RetryRollout(tenant=tenant, rollout_id=rid, requested_by="tests")
        await self.send(cmd)
        return cmd

    async def abort(self, tenant: str, rid: uuid.UUID) -> AbortRollout:
        cmd = AbortRollout(tenant=tenant, rollout_id=rid, requested_by="ops")
        await self.send(cmd)
        return cmd


@pytest.fixture(scope="session")
async def commands(
    sched_connection: AbstractRobustConnection, sched_topology: Topology
) -> AsyncIterator[Commands]:
    publisher = AmqpPublisher(sched_connection, sched_topology)
    await publisher.start()
    yield Commands(publisher, sched_topology)
    await publisher.close()
