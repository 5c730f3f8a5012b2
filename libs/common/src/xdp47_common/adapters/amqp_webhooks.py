"""The webhook worker's queues on RabbitMQ, declared by the worker at its start.

- ``webhooks.events``: a quorum work queue bound to ``xdp47.events`` (``rollout.#``),
  the worker's own copy of every rollout event;
- ``webhooks.deliveries``: a quorum work queue of delivery jobs, bound to
  ``xdp47.webhooks`` with key ``delivery``;
- one delay queue per retry delay, ``webhooks.retry.<ms>ms``, bound with key
  ``retry.<ms>``: a job waits there ``<ms>`` (the queue's ``x-message-ttl``) and is
  dead-lettered back to ``xdp47.webhooks`` with key ``delivery``, into the work
  queue. No process sleeps through a backoff.

Each work queue has its dead queue on ``xdp47.dlx``, as the others do
(``amqp.declare_work_queue``). Idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from xdp47_common.adapters.amqp import declare_work_queue
from xdp47_common.topology import Topology

__all__ = ["declare_webhook_queues"]

DELIVERY_KEY = Topology.WEBHOOK_DELIVERY_KEY
retry_key = Topology.webhook_retry_key


async def declare_webhook_queues(
    connection: AbstractRobustConnection, topology: Topology, delays_ms: Sequence[int]
) -> None:
    channel = await connection.channel()
    try:
        events = await channel.declare_exchange(
            topology.events, aio_pika.ExchangeType.TOPIC, durable=True
        )
        jobs = await channel.declare_exchange(
            topology.webhooks, aio_pika.ExchangeType.DIRECT, durable=True
        )
        await channel.declare_exchange(
            topology.dlx, aio_pika.ExchangeType.DIRECT, durable=True
        )
        for name, exchange, key in (
            (topology.webhook_events_queue, events, "rollout.#"),
            (topology.webhook_deliveries_queue, jobs, DELIVERY_KEY),
        ):
            await declare_work_queue(
                channel, topology, name, exchange, key, reject_publish=False
            )
        for delay in sorted(set(delays_ms)):
            wait = await channel.declare_queue(
                topology.webhook_retry_queue(delay),
                durable=True,
                arguments={
                    "x-message-ttl": delay,
                    "x-dead-letter-exchange": topology.webhooks,
                    "x-dead-letter-routing-key": DELIVERY_KEY,
                },
            )
            await wait.bind(jobs, routing_key=retry_key(delay))
    finally:
        await channel.close()
