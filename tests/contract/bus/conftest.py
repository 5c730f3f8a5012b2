"""The bus contract's fixtures: one ``Harness`` per implementation.

Every test in this folder runs twice: against ``InMemoryBus`` and against
``AmqpBus`` on the real RabbitMQ (under a namespace of its own per test, deleted
afterwards). The harness adds what only a test needs: publishing raw bytes (for
poison) and opening a second bus on the same names (the RabbitMQ one is a new
connection, as a second process would have).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aio_pika
import pytest

from tests.support.amqp import delete_topology
from xdp47_common.adapters.amqp import connect
from xdp47_common.adapters.amqp_bus import AmqpBus
from xdp47_common.adapters.memory import InMemoryBus
from xdp47_common.bus import Bus
from xdp47_common.topology import Topology


@dataclass
class Harness:
    kind: str
    bus: Bus
    topology: Topology
    raw: Callable[[str, str, bytes], Awaitable[None]]
    another: Callable[[], Awaitable[Bus]]
    _extra: list[Bus] = field(default_factory=list)


@pytest.fixture(params=["memory", pytest.param("amqp", marks=pytest.mark.integration)])
async def harness(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Harness]:
    if request.param == "memory":
        async for h in _memory():
            yield h
    else:
        amqp_url: str = request.getfixturevalue("amqp_url")
        namespace: str = request.getfixturevalue("amqp_namespace")
        async for h in _amqp(amqp_url, f"{namespace}_bus{uuid.uuid4().hex[:8]}"):
            yield h


async def _memory() -> AsyncIterator[Harness]:
    topology = Topology("contract")
    bus = InMemoryBus(topology)
    await bus.start()

    async def raw(exchange: str, key: str, body: bytes) -> None:
        bus.publish_raw(exchange, key, body)

    async def another() -> Bus:
        return bus  # one process: the same instance is the shared broker

    yield Harness("memory", bus, topology, raw, another)
    await bus.close()


async def _amqp(url: str, namespace: str) -> AsyncIterator[Harness]:
    topology = Topology(namespace)
    bus = AmqpBus(url, topology, publish_timeout=5)
    await bus.start()
    raw_conn = await connect(url)
    channel = await raw_conn.channel(publisher_confirms=True)
    extra: list[Bus] = []

    async def raw(exchange: str, key: str, body: bytes) -> None:
        ex = await channel.get_exchange(exchange)
        await ex.publish(aio_pika.Message(body), routing_key=key)

    async def another() -> Bus:
        other = AmqpBus(url, topology, publish_timeout=5)
        await other.start()
        extra.append(other)
        return other

    try:
        yield Harness("amqp", bus, topology, raw, another, extra)
    finally:
        for other in extra:
            await other.close()
        await bus.close()
        await delete_topology(raw_conn, topology)
        await raw_conn.close()
