"""The heartbeat consumer bounds its batches by bytes, from the settings.

Each message is one of ingest's batches (up to 256 heartbeats): without a byte
bound a backlog was written 500 messages, ~128,000 heartbeats, per transaction
(B6: the scheduler's resident memory kept each such high-water mark).
"""

from __future__ import annotations

from typing import Any, cast

from xdp47_common.bus import ConsumerOptions
from xdp47_common.topology import Topology
from xdp47_scheduler.consumer import HeartbeatConsumer
from xdp47_scheduler.settings import SchedulerSettings


class _Started:
    async def start(self) -> None:
        return None


class _Queues:
    """Records the options the consumer subscribes with."""

    def __init__(self) -> None:
        self.options: ConsumerOptions | None = None

    def batch_consumer(
        self, queue_name: str, decode: Any, handle: Any, options: ConsumerOptions
    ) -> _Started:
        self.options = options
        return _Started()


async def test_the_consumer_subscribes_with_the_byte_bound_of_the_settings() -> None:
    settings = SchedulerSettings()
    assert settings.sched_batch_bytes == 1 << 20
    queues = _Queues()
    consumer = HeartbeatConsumer(
        cast(Any, None),
        cast(Any, queues),
        Topology(),
        batch_size=settings.sched_batch_size,
        batch_bytes=settings.sched_batch_bytes,
    )
    await consumer.start()
    assert queues.options is not None
    assert queues.options.max_batch_bytes == settings.sched_batch_bytes
    assert queues.options.max_batch == settings.sched_batch_size
