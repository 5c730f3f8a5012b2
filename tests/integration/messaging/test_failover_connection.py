"""A connection over several broker nodes: it starts on the first node that
answers, and when its node dies it reconnects to the next one by itself, its
channels and consumers restored there.

Two standalone nodes of the test's own (not a cluster: what is checked here is
the client's choice of node; replication is the fault suite's cluster scenario).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, cast
from urllib.parse import urlsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection
from tenacity import AsyncRetrying, stop_after_delay, wait_fixed

from tests.support.brokers import OwnRabbit
from tests.support.processes import free_port
from tests.support.tcp_proxy import TcpProxy
from xdp47_common.adapters.amqp import connect
from xdp47_common.adapters.amqp_nodes import RestoringChannel

pytestmark = pytest.mark.integration


def _port(connection: AbstractRobustConnection) -> int | None:
    """The port of the node the connection is on now (aio-pika's ``url``)."""
    port: int | None = cast(Any, connection).url.port
    return port


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[tuple[OwnRabbit, OwnRabbit]]:
    with OwnRabbit() as a, OwnRabbit() as b:
        yield a, b


async def test_starts_on_the_first_node_that_answers(
    two_nodes: tuple[OwnRabbit, OwnRabbit],
) -> None:
    _, b = two_nodes
    dead = free_port()
    connection = await connect(
        f"amqp://guest:guest@127.0.0.1:{dead},127.0.0.1:{b.port}/",
        connect_timeout=5,
    )
    try:
        assert _port(connection) == b.port
    finally:
        await connection.close()


async def test_none_answering_raises() -> None:
    ports = (free_port(), free_port())
    url = ",".join(f"amqp://guest:guest@127.0.0.1:{p}/" for p in ports)
    with pytest.raises(ConnectionError):
        await connect(url, connect_timeout=2)


async def test_fails_over_to_the_next_node_and_keeps_consuming(
    two_nodes: tuple[OwnRabbit, OwnRabbit],
) -> None:
    a, b = two_nodes
    connection = await connect(
        f"amqp://guest:guest@127.0.0.1:{a.port},127.0.0.1:{b.port}/",
        connect_timeout=5,
    )
    received: asyncio.Queue[bytes] = asyncio.Queue()
    try:
        assert _port(connection) == a.port
        channel = await connection.channel()
        queue = await channel.declare_queue("failover-probe", durable=True)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                await received.put(message.body)

        await queue.consume(on_message)
        await asyncio.to_thread(a.kill)
        # The robust connection comes back on b: queue redeclared, consumer
        # restored, so a message published there arrives.
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(60), wait=wait_fixed(0.2), reraise=True
        ):
            with attempt:
                assert _port(connection) == b.port
                assert not connection.is_closed
                await channel.default_exchange.publish(
                    aio_pika.Message(b"after-failover"), routing_key="failover-probe"
                )
                body = await asyncio.wait_for(received.get(), timeout=1)
                assert body == b"after-failover"
    finally:
        await connection.close()
        await asyncio.to_thread(a.start)


async def test_a_channel_reopen_on_a_silent_link_gives_up_and_the_channel_comes_back(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # When a node dies, aio-pika's channel reopens itself from its close
    # callback, which can run before the connection has dropped the dead link:
    # that reopen's Channel.Open is never answered. It used to wait for ever
    # holding the channel's restore lock, so the connection's restore on the
    # next node waited behind it and every publish failed from then on.
    monkeypatch.setattr(RestoringChannel, "REOPEN_TIMEOUT", 1.0)
    parts = urlsplit(amqp_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    await proxy.start()
    connection = await connect(
        f"amqp://guest:guest@127.0.0.1:{proxy.port}/", connect_timeout=5
    )
    try:
        channel = await connection.channel(publisher_confirms=True)
        assert isinstance(channel, RestoringChannel)
        proxy.freeze()
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(TimeoutError):
            # (bounded here too, so that a hang fails the test rather than stalls it)
            await asyncio.wait_for(channel.reopen(), timeout=20)
        assert loop.time() - began < 10, "the reopen waited for the silent link"
        # The link dies for good and comes back: the connection reconnects and
        # restores the channel, whose publishes are confirmed again.
        await proxy.cut()
        await proxy.restore()
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(60), wait=wait_fixed(0.2), reraise=True
        ):
            with attempt:
                await asyncio.wait_for(
                    channel.default_exchange.publish(
                        aio_pika.Message(b"after"), routing_key="xdp47-nowhere"
                    ),
                    timeout=2,
                )
    finally:
        await connection.close()
        await proxy.close()
