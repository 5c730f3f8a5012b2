"""The webhook worker's delay queues: bounded by the setting, and deleted by the
broker once no worker declares them any more (``x-expires``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection
from pamqp.commands import Basic
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_fixed,
)

from tests.support.amqp import declared, message_count
from xdp47_common.adapters.amqp import connect
from xdp47_common.adapters.amqp_webhooks import MAX_RETRY_DELAYS, declare_retry_queues
from xdp47_common.topology import Topology
from xdp47_scheduler.webhooks.settings import WebhookSettings

pytestmark = pytest.mark.integration

HOLD_MS = 600_000  # long enough that nothing leaves the queue during a test


async def _routed(channel: AbstractChannel, t: Topology, delay_ms: int) -> bool:
    """Whether a job for ``delay_ms`` finds its delay queue: a mandatory publish
    (a passive declare would renew the queue's lease, a publish does not)."""
    exchange = await channel.get_exchange(t.webhooks)
    sent = await exchange.publish(
        aio_pika.Message(b"{}"),
        routing_key=Topology.webhook_retry_key(delay_ms),
        mandatory=True,
    )
    return isinstance(sent, Basic.Ack)


async def _eventually(check: Callable[[], Awaitable[bool]], within: float) -> None:
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(within),
        wait=wait_fixed(0.2),
        retry=retry_if_exception_type(AssertionError),
        reraise=True,
    ):
        with attempt:
            assert await check()


async def _wait_for_count(connection: AbstractConnection, queue: str, n: int) -> None:
    # A channel of its own: aio-pika answers a passive declare on the channel
    # that declared the queue from what that declaration returned.
    channel = await connection.channel()

    async def holds_n() -> bool:
        return await message_count(channel, queue) == n

    await _eventually(holds_n, within=10)


async def test_a_delay_queue_nobody_renews_is_deleted_by_the_broker(
    amqp_url: str, amqp_namespace: str
) -> None:
    connection = await connect(amqp_url)
    async with connection, declared(connection, amqp_namespace, [HOLD_MS]) as t:
        await declare_retry_queues(connection, t, [HOLD_MS], expires_ms=1_500)
        channel = await connection.channel()
        assert await _routed(channel, t, HOLD_MS)

        async def gone() -> bool:
            return not await _routed(channel, t, HOLD_MS)

        await _eventually(gone, within=30)


async def test_renewing_keeps_a_delay_queue_and_its_jobs(
    amqp_url: str, amqp_namespace: str
) -> None:
    """Declared again within its lease, the queue stays, with what it holds."""
    connection = await connect(amqp_url)
    async with connection, declared(connection, amqp_namespace, [HOLD_MS]) as t:
        await declare_retry_queues(connection, t, [HOLD_MS])
        channel = await connection.channel()
        assert await _routed(channel, t, HOLD_MS)
        await declare_retry_queues(connection, t, [HOLD_MS])
        await _wait_for_count(connection, t.webhook_retry_queue(HOLD_MS), 1)


async def test_a_delay_queue_declared_without_a_lease_still_takes_retries(
    amqp_url: str, amqp_namespace: str
) -> None:
    """A queue from before delay queues expired (other arguments): the worker
    starts all the same, and retries still wait in it."""
    connection = await connect(amqp_url)
    async with connection, declared(connection, amqp_namespace, [HOLD_MS]) as t:
        channel = await connection.channel()
        await channel.declare_queue(
            t.webhook_retry_queue(HOLD_MS),
            durable=True,
            arguments={
                "x-message-ttl": HOLD_MS,
                "x-dead-letter-exchange": t.webhooks,
                "x-dead-letter-routing-key": Topology.WEBHOOK_DELIVERY_KEY,
            },
        )
        await declare_retry_queues(connection, t, [HOLD_MS])
        assert await _routed(channel, t, HOLD_MS)
        await _wait_for_count(connection, t.webhook_retry_queue(HOLD_MS), 1)


def _settings(delays: str) -> WebhookSettings:
    return WebhookSettings(
        db_url="postgresql://x@h/d",
        amqp_url="amqp://g:g@h/",
        webhook_retry_delays=delays,
    )


def test_the_delays_are_a_bounded_ladder() -> None:
    ok = ",".join(["1"] * MAX_RETRY_DELAYS)
    assert len(_settings(ok).delays_ms) == MAX_RETRY_DELAYS
    with pytest.raises(ValidationError, match=f"between 1 and {MAX_RETRY_DELAYS}"):
        _settings(ok + ",1")
