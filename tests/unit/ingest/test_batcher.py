"""The heartbeat micro-batcher: one confirmed message per batch, every waiter
released by that confirm or failed by its refusal (pure, with a fake publisher)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from xdp47_common.bus import PublishFailed
from xdp47_common.messages import (
    HEARTBEAT_ADAPTER,
    HeartbeatBatch,
    HeartbeatBody,
    PreparedEnvelope,
)
from xdp47_common.messages.envelope import Envelope
from xdp47_common.messages.wire import heartbeat_json
from xdp47_common.topology import Topology
from xdp47_ingest.batcher import HeartbeatBatcher

TOPOLOGY = Topology("unit")


class FakePublisher:
    """Records publishes; holds each confirm until ``confirm`` is set."""

    def __init__(self, *, fail: bool = False) -> None:
        self.published: list[tuple[str, str, HeartbeatBatch]] = []
        self.arrived = asyncio.Event()  # a batch was published
        self.confirm = asyncio.Event()
        self.fail = fail

    async def publish(
        self, exchange: str, routing_key: str, envelope: Envelope | PreparedEnvelope
    ) -> None:
        # What a consumer decodes from the bytes on the wire.
        assert isinstance(envelope, PreparedEnvelope)
        message = HEARTBEAT_ADAPTER.validate_json(envelope.body)
        assert isinstance(message, HeartbeatBatch)
        assert message.message_id == envelope.message_id
        self.published.append((exchange, routing_key, message))
        self.arrived.set()
        await self.confirm.wait()
        if self.fail:
            raise PublishFailed("nack")


def beat(device: str, seq: int) -> bytes:
    return heartbeat_json(HeartbeatBody(seq=seq), device, datetime.now(UTC))


async def test_concurrent_heartbeats_share_one_message_and_one_confirm() -> None:
    pub = FakePublisher()
    batcher = HeartbeatBatcher(pub, TOPOLOGY, max_batch=100, max_wait=0.001)
    waiters = [
        asyncio.create_task(batcher.submit("acme", beat(f"d{i}", i))) for i in range(10)
    ]
    await asyncio.wait_for(pub.arrived.wait(), timeout=10)
    await asyncio.sleep(0)  # one turn of the loop: a release would run in it
    # Published, not confirmed yet: nobody is released.
    assert not any(w.done() for w in waiters)
    pub.confirm.set()
    await asyncio.gather(*waiters)
    assert len(pub.published) == 1
    exchange, key, message = pub.published[0]
    assert (exchange, key) == (TOPOLOGY.telemetry, TOPOLOGY.heartbeat_key("acme"))
    assert isinstance(message, HeartbeatBatch)
    assert [b.device_id for b in message.heartbeats] == [f"d{i}" for i in range(10)]


async def test_a_refused_batch_fails_every_waiter() -> None:
    pub = FakePublisher(fail=True)
    pub.confirm.set()
    batcher = HeartbeatBatcher(pub, TOPOLOGY, max_batch=100, max_wait=0)
    results = await asyncio.gather(
        *(batcher.submit("acme", beat(f"d{i}", i)) for i in range(3)),
        return_exceptions=True,
    )
    assert len(pub.published) == 1
    assert all(isinstance(r, PublishFailed) for r in results)


async def test_tenants_are_batched_apart_and_max_batch_flushes_early() -> None:
    pub = FakePublisher()
    pub.confirm.set()
    batcher = HeartbeatBatcher(pub, TOPOLOGY, max_batch=2, max_wait=10)
    await asyncio.wait_for(
        asyncio.gather(
            batcher.submit("acme", beat("a1", 1)),
            batcher.submit("acme", beat("a2", 1)),
            batcher.submit("beta", beat("b1", 1)),
            batcher.submit("beta", beat("b2", 1)),
        ),
        timeout=5,  # max_wait is 10 s: only max_batch can have flushed these
    )
    keys = sorted((key, len(m.heartbeats)) for _, key, m in pub.published)
    assert keys == [("heartbeat.acme", 2), ("heartbeat.beta", 2)]


async def test_close_publishes_what_is_open() -> None:
    pub = FakePublisher()
    pub.confirm.set()
    batcher = HeartbeatBatcher(pub, TOPOLOGY, max_batch=100, max_wait=10)
    waiter = batcher.add("acme", beat("d", 1))
    await batcher.close()
    await asyncio.wait_for(waiter, timeout=5)
    assert len(pub.published) == 1


@pytest.mark.parametrize("fail", [False, True])
async def test_callbacks_share_the_batch_with_futures_and_are_called_once_it_settles(
    fail: bool,
) -> None:
    pub = FakePublisher(fail=fail)
    batcher = HeartbeatBatcher(pub, TOPOLOGY, max_batch=100, max_wait=0.001)
    settled: list[BaseException | None] = []

    def broken(error: BaseException | None) -> None:
        raise RuntimeError("an answer that fails")

    batcher.add_callback("acme", beat("d0", 1), settled.append)
    batcher.add_callback("acme", beat("d1", 1), broken)
    waiter = batcher.add("acme", beat("d2", 1))
    batcher.add_callback("acme", beat("d3", 1), settled.append)
    await asyncio.wait_for(pub.arrived.wait(), timeout=10)
    await asyncio.sleep(0)  # one turn of the loop: a release would run in it
    # Published, not confirmed yet: no callback has been called.
    assert settled == []
    pub.confirm.set()
    await asyncio.gather(waiter, return_exceptions=True)
    assert len(pub.published) == 1
    assert [b.device_id for b in pub.published[0][2].heartbeats] == [
        "d0",
        "d1",
        "d2",
        "d3",
    ]
    # Both callbacks were called (the failing one between them did not stop
    # the second), with the batch's outcome, as the future was.
    assert len(settled) == 2
    if fail:
        assert all(isinstance(e, PublishFailed) for e in settled)
        assert isinstance(waiter.exception(), PublishFailed)
    else:
        assert settled == [None, None]
        assert waiter.result() is None


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        HeartbeatBatcher(FakePublisher(), TOPOLOGY, max_batch=0)
