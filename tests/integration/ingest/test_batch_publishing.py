"""Micro-batched publishing: concurrent heartbeats travel as HeartbeatBatch
messages, one each with ``XDP47_INGEST_BATCH_MAX=1``, and the scheduler's
consumer writes them all."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from tenacity import AsyncRetrying, stop_after_delay, wait_fixed

from tests.integration.ingest.conftest import make_device, running, settings_for
from xdp47_common.topology import Topology
from xdp47_ingest.app import create_app
from xdp47_scheduler.consumer import HeartbeatConsumer

pytestmark = pytest.mark.integration


async def _until_all(pool, devices, seq: int) -> None:
    ids = [d.id for d in devices]
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(15), wait=wait_fixed(0.05), reraise=True
    ):
        with attempt:
            rows = await pool.fetch(
                "SELECT id, last_seq FROM devices WHERE id = ANY($1)", ids
            )
            assert {r["id"]: r["last_seq"] for r in rows} == dict.fromkeys(ids, seq)


async def test_concurrent_heartbeats_are_batched_and_all_written(
    client: httpx.AsyncClient, pool, consumer: HeartbeatConsumer
) -> None:
    devices = [await make_device(pool) for _ in range(30)]
    answers = await asyncio.gather(
        *(
            client.post(
                f"/api/devices/{d.id}/heartbeat", json={"seq": 7}, headers=d.auth
            )
            for d in devices
        )
    )
    assert [a.status_code for a in answers] == [202] * 30
    await _until_all(pool, devices, 7)


async def test_unbatched_ingest_publishes_batches_of_one_the_consumer_reads(
    db_url: str, amqp_url: str, topology: Topology, pool, consumer: HeartbeatConsumer
) -> None:
    settings = settings_for(db_url, amqp_url, topology).model_copy(
        update={"ingest_batch_max": 1}
    )
    devices = [await make_device(pool) for _ in range(3)]
    async with running(create_app(settings)) as single:
        for d in devices:
            r = await single.post(
                f"/api/devices/{d.id}/heartbeat", json={"seq": 3}, headers=d.auth
            )
            assert r.status_code == 202, r.text
    await _until_all(pool, devices, 3)
