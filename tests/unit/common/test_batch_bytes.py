"""The batch consumer bounds a batch by its bodies' bytes as well as by count.

A heartbeat message is itself a batch (ingest's ``HeartbeatBatch``, up to 256
heartbeats), so a count of messages alone let one transaction of the scheduler
decode a backlog's worth of heartbeats at once (B6: the scheduler's memory kept
each such high-water mark).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import pytest

from tests.support.waiting import until
from xdp47_common.adapters.batching import BatchConsumer
from xdp47_common.adapters.deliveries import Deliver
from xdp47_common.bus import ConsumerOptions


class _Delivery:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.message_id: str | None = None
        self.type: str | None = None
        self.routing_key: str | None = None

    @property
    def headers(self) -> Mapping[str, Any] | None:
        return None

    @property
    def live(self) -> bool:
        return True

    @property
    def channel_key(self) -> Hashable:
        return 0

    async def ack(self, *, multiple: bool = False) -> bool:
        return True

    async def requeue(self) -> bool:
        return True

    async def dead_letter(self) -> bool:
        return True


class _Channel:
    """Holds the consumer's ``deliver`` so the test pushes deliveries itself."""

    def __init__(self) -> None:
        self.deliver: Deliver | None = None

    async def consume(self, queue_name: str, prefetch: int, deliver: Deliver) -> None:
        self.deliver = deliver

    async def cancel(self) -> None:
        return None

    async def close(self) -> None:
        return None


async def _batches(bodies: list[bytes], options: ConsumerOptions) -> list[list[bytes]]:
    """Deliver ``bodies`` at once; the batches the handler got, in order."""
    seen: list[list[bytes]] = []

    async def handle(batch: list[bytes]) -> None:
        seen.append(batch)

    channel = _Channel()
    consumer = BatchConsumer(channel, "q", bytes, handle, options)
    await consumer.start()
    assert channel.deliver is not None
    for body in bodies:
        await channel.deliver(_Delivery(body))
    try:
        await until(
            lambda: sum(map(len, seen)) == len(bodies) and consumer.idle,
            within=10,
            what="every message handled",
        )
    finally:
        await consumer.stop()
    return seen


async def test_a_batch_stops_before_the_message_that_would_cross_the_bound() -> None:
    bodies = [bytes([i]) * 100 for i in range(7)]
    options = ConsumerOptions(max_batch=500, max_batch_bytes=250, max_wait_ms=20)
    seen = await _batches(bodies, options)
    assert [len(b) for b in seen] == [2, 2, 2, 1]
    # Nothing lost or reordered: the message past a bound opens the next batch.
    assert [m for b in seen for m in b] == bodies


async def test_a_message_larger_than_the_bound_goes_alone() -> None:
    bodies = [b"a" * 10, b"b" * 1000, b"c" * 10]
    options = ConsumerOptions(max_batch=500, max_batch_bytes=100, max_wait_ms=20)
    seen = await _batches(bodies, options)
    assert seen == [[b"a" * 10], [b"b" * 1000], [b"c" * 10]]


async def test_without_a_byte_bound_only_the_count_cuts() -> None:
    bodies = [b"x" * 100] * 7
    options = ConsumerOptions(max_batch=3, max_wait_ms=20)
    seen = await _batches(bodies, options)
    assert [len(b) for b in seen] == [3, 3, 1]


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch_bytes"):
        ConsumerOptions(max_batch_bytes=0)
