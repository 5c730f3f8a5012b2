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

The delay queues are as many as the configured delays (``XDP47_WEBHOOK_RETRY_DELAYS``,
at most ``MAX_RETRY_DELAYS``: a fixed ladder, never a delay computed per job, so
jitter cannot mint a queue per message). They are classic queues, named so
explicitly (a vhost whose default type is quorum would otherwise make each a Raft
group of its own, for a holding pen whose contents the sweep can recreate), and
carry ``x-expires``: one no worker has declared for ``RETRY_QUEUE_EXPIRES_MS``
(a delay dropped from the setting, a namespace given up) is deleted by the
broker. A running worker renews its queues every ``RETRY_QUEUE_RENEW_S``; a job
lost with an expired queue is given again by the sweep once it is due.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import ChannelPreconditionFailed

from xdp47_common.adapters.amqp import declare_work_queue
from xdp47_common.topology import Topology

__all__ = [
    "MAX_RETRY_DELAYS",
    "RETRY_QUEUE_EXPIRES_MS",
    "RETRY_QUEUE_RENEW_S",
    "declare_retry_queues",
    "declare_webhook_queues",
]

log = logging.getLogger(__name__)

MAX_RETRY_DELAYS = 10
# An hour unused before the broker deletes a delay queue, renewed every five
# minutes: twelve renewals may fail (a broker restart, a worker redeploy) before
# a queue in use expires, and a given-up one is gone within the hour.
RETRY_QUEUE_EXPIRES_MS = 3_600_000
RETRY_QUEUE_RENEW_S = 300.0

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
    finally:
        await channel.close()
    await declare_retry_queues(connection, topology, delays_ms)


async def declare_retry_queues(
    connection: AbstractRobustConnection,
    topology: Topology,
    delays_ms: Sequence[int],
    *,
    expires_ms: int = RETRY_QUEUE_EXPIRES_MS,
) -> None:
    """Declare (or renew the lease of) the delay queue of each delay.

    Args:
        connection: an open connection.
        topology: the names.
        delays_ms: the retry delays in milliseconds.
        expires_ms: how long unused before the broker deletes a queue.
    """
    for delay in sorted(set(delays_ms)):
        name = topology.webhook_retry_queue(delay)
        channel = await connection.channel()
        try:
            try:
                wait = await channel.declare_queue(
                    name,
                    durable=True,
                    arguments={
                        "x-queue-type": "classic",
                        "x-message-ttl": delay,
                        "x-expires": expires_ms,
                        "x-dead-letter-exchange": topology.webhooks,
                        "x-dead-letter-routing-key": DELIVERY_KEY,
                    },
                )
            except ChannelPreconditionFailed:
                # Declared before delay queues expired: it still works; deleted
                # by hand, it is declared again with the lease.
                log.warning("delay queue %s has no x-expires: delete it to renew", name)
                channel = await connection.channel()
                wait = await channel.declare_queue(name, passive=True)
            await wait.bind(topology.webhooks, routing_key=retry_key(delay))
        finally:
            await channel.close()
