"""Fault injection for the fault tests: a bus whose batch consumers give a share
of their deliveries back to the queue unprocessed, to prove redelivery harmless.

It wraps the consumer's channel (``adapters.deliveries.ConsumerChannel``), so
production code carries no fault switch: ``RequeuingAmqpBus`` is an ``AmqpBus``
whose ``consumer_channel`` is wrapped, and running this file runs the real
scheduler on it (the fault harness
starts it instead of ``xdp47-scheduler`` when a scenario asks for requeues).
(Run as a file, ``python tests/support/requeuing_bus.py``: it imports nothing
of ``tests``.) What it requeued is counted as
``xdp47_consumer_fault_requeues_total`` on the scheduler's ``/metrics``.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

from aio_pika.abc import AbstractChannel
from prometheus_client import Counter

from xdp47_common.adapters.amqp_bus import AmqpBus
from xdp47_common.adapters.deliveries import ConsumerChannel, Deliver, Incoming
from xdp47_common.plumbing_metrics import PLUMBING
from xdp47_common.topology import Topology

__all__ = ["SCHEDULER", "SHARE_ENV", "RequeuingAmqpBus", "RequeuingChannel"]

# The share of deliveries requeued (0-0.5), read by the scheduler run here.
SHARE_ENV = "XDP47_TEST_REQUEUE_SHARE"
# The argv of a scheduler process on this bus.
SCHEDULER = (sys.executable, str(Path(__file__).resolve()))

FAULT_REQUEUES = Counter(
    "xdp47_consumer_fault_requeues_total",
    "Deliveries requeued unprocessed by the fault tests' injection.",
    ["queue"],
    registry=PLUMBING,
)


class RequeuingChannel:
    """A ``ConsumerChannel`` that requeues ``share`` of the deliveries of
    ``inner`` before the consumer sees them."""

    def __init__(self, inner: ConsumerChannel, share: float) -> None:
        if not 0 <= share <= 0.5:
            raise ValueError("the requeued share is between 0 and 0.5")
        self._inner = inner
        self._share = share
        self._rng = random.Random()

    async def consume(self, queue_name: str, prefetch: int, deliver: Deliver) -> None:
        async def maybe_requeue(message: Incoming) -> None:
            if self._rng.random() < self._share:
                if await message.requeue():
                    FAULT_REQUEUES.labels(queue_name).inc()
                return
            await deliver(message)

        await self._inner.consume(queue_name, prefetch, maybe_requeue)

    async def cancel(self) -> None:
        await self._inner.cancel()

    async def close(self) -> None:
        await self._inner.close()


class RequeuingAmqpBus(AmqpBus):
    """An ``AmqpBus`` whose batch consumers requeue ``share`` of deliveries."""

    def __init__(
        self, url: str, topology: Topology, *, share: float, publish_timeout: float
    ) -> None:
        super().__init__(url, topology, publish_timeout=publish_timeout)
        self._share = share

    def consumer_channel(self, channel: AbstractChannel) -> ConsumerChannel:
        return RequeuingChannel(super().consumer_channel(channel), self._share)


async def _serve() -> None:
    from xdp47_scheduler.service import Scheduler
    from xdp47_scheduler.settings import SchedulerSettings

    settings = SchedulerSettings()
    bus = RequeuingAmqpBus(
        settings.amqp_url,
        Topology(settings.amqp_namespace),
        publish_timeout=settings.publish_timeout,
        share=float(os.environ[SHARE_ENV]),
    )
    scheduler = Scheduler(settings, bus=bus)
    await scheduler.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await scheduler.stop()
        await bus.close()


if __name__ == "__main__":
    from xdp47_common.logging import configure_logging

    configure_logging("scheduler")
    asyncio.run(_serve())
