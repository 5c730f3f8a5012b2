"""Ingest's identity/desired-state cache against the real PostgreSQL.

Answers come from memory only while the LISTEN connection is up, and every
change that alters an answer reaches the cache with its commit (migration 0008's
triggers): a re-claimed device's old credential stops working, a rollout's
start and abort change what its devices are told, and losing the listener
falls back to reading the database until it is back.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.ingest.conftest import (
    add_artifact,
    make_device,
    running,
    running_rollout,
    settings_for,
)
from tests.support.waiting import until
from xdp47_common.tokens import SecretKind, hash_secret, new_secret
from xdp47_ingest import create_app
from xdp47_ingest.cache import CHANNEL, DesiredCache

pytestmark = pytest.mark.integration


def _lookups(metrics: str, result: str) -> float:
    name = f'xdp47_ingest_identity_cache_lookups_total{{result="{result}"}}'
    for line in metrics.splitlines():
        if line.startswith(name):
            return float(line.split()[-1])
    return 0.0


def _invalidations(metrics: str) -> float:
    """Drops heard: tenant-wide, and of a wave's devices (a rollout's start)."""
    total = 0.0
    for name in (
        "xdp47_ingest_identity_cache_invalidations_total",
        "xdp47_ingest_identity_cache_wave_drops_total",
    ):
        for line in metrics.splitlines():
            if line.startswith(name + " "):
                total += float(line.split()[-1])
    return total


async def _eventually(
    probe: Callable[[], Awaitable[httpx.Response]],
    done: Callable[[httpx.Response], bool],
) -> httpx.Response:
    """Probe until ``done``: a notification arrives a moment after its commit."""
    last: list[httpx.Response] = []

    async def held() -> bool:
        last[:] = [await probe()]
        return done(last[0])

    await until(held, what="the notification's effect")
    return last[0]


async def test_answers_come_from_memory_after_the_first_read(client, pool) -> None:
    device = await make_device(pool)
    url = f"/api/devices/{device.id}/desired"
    before = (await client.get("/metrics")).text
    for _ in range(5):
        assert (await client.get(url, headers=device.auth)).status_code == 200
    after = (await client.get("/metrics")).text
    assert _lookups(after, "miss") - _lookups(before, "miss") == 1
    assert _lookups(after, "hit") - _lookups(before, "hit") == 4
    assert "xdp47_ingest_identity_cache_live 1.0" in after


async def test_a_reclaimed_device_s_old_credential_stops_working(client, pool) -> None:
    device = await make_device(pool)
    url = f"/api/devices/{device.id}/desired"
    assert (await client.get(url, headers=device.auth)).status_code == 200
    fresh = new_secret(SecretKind.DEVICE_CREDENTIAL)
    await pool.execute(
        "UPDATE devices SET credential_hash = $1 WHERE tenant = $2 AND id = $3",
        hash_secret(fresh),
        device.tenant,
        device.id,
    )
    old = await _eventually(
        lambda: client.get(url, headers=device.auth), lambda r: r.status_code != 200
    )
    assert old.status_code == 401
    new = await client.get(url, headers={"Authorization": f"Bearer {fresh}"})
    assert new.status_code == 200


async def test_rollout_start_and_abort_reach_the_devices(client, pool) -> None:
    device = await make_device(pool)
    url = f"/api/devices/{device.id}/desired"
    assert (await client.get(url, headers=device.auth)).json()["action"] == "none"
    artifact = await add_artifact(pool, device.tenant)
    rollout = await running_rollout(pool, device, artifact)
    told = await _eventually(
        lambda: client.get(url, headers=device.auth),
        lambda r: r.json()["action"] == "update",
    )
    assert told.json()["rollout_id"] == str(rollout)
    # The heartbeat's answer compares with what the heartbeat reports.
    hb = f"/api/devices/{device.id}/heartbeat"
    ran = await client.post(
        hb, json={"seq": 1, "current_artifact_id": str(artifact)}, headers=device.auth
    )
    assert ran.json()["action"] == "none"
    await pool.execute("UPDATE rollouts SET status = 'aborted' WHERE id = $1", rollout)
    dropped = await _eventually(
        lambda: client.get(url, headers=device.auth),
        lambda r: r.json()["action"] == "none",
    )
    assert dropped.json()["artifact_id"] is None


async def test_another_tenant_s_change_keeps_this_tenant_cached(client, pool) -> None:
    mine = await make_device(pool)
    other = await make_device(pool)
    url = f"/api/devices/{mine.id}/desired"

    async def hits() -> float:
        return _lookups((await client.get("/metrics")).text, "hit")

    # A read that overlaps any notification is not kept: read until one is.
    for _ in range(300):
        before = await hits()
        await client.get(url, headers=mine.auth)
        if await hits() > before:
            break
    else:
        pytest.fail("this tenant's answer was never kept")
    seen = _invalidations((await client.get("/metrics")).text)
    await running_rollout(pool, other, await add_artifact(pool, other.tenant))
    await _eventually(
        lambda: client.get("/metrics"), lambda r: _invalidations(r.text) > seen
    )
    before = (await client.get("/metrics")).text
    await client.get(url, headers=mine.auth)
    after = (await client.get("/metrics")).text
    assert _lookups(after, "hit") - _lookups(before, "hit") == 1


async def test_without_its_listener_the_cache_reads_the_database(
    db_url: str, pool
) -> None:
    """Kill the LISTEN backend: answers keep coming, read from the database (so
    a change made meanwhile is seen without a notification), and memory is used
    again once the listener is back."""
    device = await make_device(pool)
    # Its listener is named, so only it is killed: other tests' listeners on
    # the same server (other workers) keep theirs.
    name = f"xdp47-test-{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in db_url else "?"
    cache = DesiredCache(
        pool,
        db_url=f"{db_url}{sep}application_name={name}",
        max_entries=10,
        ttl=60,
        db_timeout=5,
        reconnect_delay=1.0,
    )
    await cache.start()
    try:
        assert cache.live
        first = await cache.lookup(device.credential)
        assert first is not None
        assert first.action == "none"
        killed = await pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE query LIKE $1 AND application_name = $2",
            f"LISTEN%{CHANNEL}%",
            name,
        )
        assert killed >= 1
        await until(lambda: not cache.live, what="the listener's loss noticed")
        await running_rollout(pool, device, await add_artifact(pool, device.tenant))
        down = await cache.lookup(device.credential)
        assert down is not None
        assert down.action == "update"
        assert len(cache._entries) == 0  # nothing kept while down
        await until(lambda: cache.live, what="the listener back")
        back = await cache.lookup(device.credential)
        assert back is not None
        assert back.action == "update"
        assert len(cache._entries) == 1
    finally:
        await cache.close()


async def test_size_zero_turns_the_cache_off(
    db_url: str, amqp_url: str, topology, pool
) -> None:
    settings = settings_for(db_url, amqp_url, topology).model_copy(
        update={"ingest_cache_size": 0}
    )
    app = create_app(settings)
    async with running(app) as client:
        device = await make_device(pool)
        url = f"/api/devices/{device.id}/desired"
        for _ in range(3):
            assert (await client.get(url, headers=device.auth)).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert _lookups(metrics, "bypass") == 3
        assert _lookups(metrics, "hit") == 0


class _SlowPool:
    """A pool whose read is overtaken by a notification while it runs."""

    def __init__(self, real: asyncpg.Pool[Any], during: Callable[[], None]) -> None:
        self.real = real
        self.during = during

    async def fetchrow(self, *args: Any, **kwargs: Any) -> Any:
        row = await self.real.fetchrow(*args, **kwargs)
        self.during()
        return row


async def test_a_read_overtaken_by_a_notification_is_not_kept(
    db_url: str, pool
) -> None:
    device = await make_device(pool)
    holder: list[DesiredCache] = []
    slow = _SlowPool(
        pool, lambda: holder[0]._on_notify(None, 0, CHANNEL, device.tenant)
    )
    cache = DesiredCache(
        slow,  # type: ignore[arg-type]
        db_url=db_url,
        max_entries=10,
        ttl=60,
        db_timeout=5,
    )
    holder.append(cache)
    await cache.start()
    try:
        assert cache.live
        assert (await cache.lookup(device.credential)) is not None
        assert len(cache._entries) == 0
        slow.during = lambda: None
        assert (await cache.lookup(device.credential)) is not None
        assert len(cache._entries) == 1
    finally:
        await cache.close()
