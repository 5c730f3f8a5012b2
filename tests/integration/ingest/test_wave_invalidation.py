"""A wave start drops the cached answers of that wave's devices only.

Migration 0027's notification names the rollout and the waves a running rollout
moved through; each ingest replica reads those devices' credentials and drops
just their entries: a device of the new wave is told at its next request, while
the rest of the tenant (earlier waves, later waves, devices in no rollout) stays
answered from memory. Any other change, and a failed read of the wave's
credentials, drops the whole tenant as before.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from tests.integration.ingest.conftest import (
    TELL_OFFLINE,
    Device,
    add_artifact,
    make_device,
)
from tests.support.waiting import until
from xdp47_common.tokens import hash_secret
from xdp47_ingest.cache import DesiredCache

pytestmark = pytest.mark.integration


class _Fleet:
    """Three devices of one tenant: ``first`` in wave 1 and ``second`` in wave 2
    of a running two-wave rollout, ``bystander`` in none."""

    def __init__(self, first: Device, second: Device, bystander: Device) -> None:
        self.first, self.second, self.bystander = first, second, bystander
        self.rollout = uuid.uuid4()

    @property
    def devices(self) -> tuple[Device, Device, Device]:
        return self.first, self.second, self.bystander


async def _fleet(pool: asyncpg.Pool[Any], m: _Metrics | None = None) -> _Fleet:
    """With ``m``, the rollout is started (and its drop done); without, a draft."""
    first = await make_device(pool)
    fleet = _Fleet(
        first,
        await make_device(pool, first.tenant),
        await make_device(pool, first.tenant),
    )
    artifact = await add_artifact(pool, first.tenant)
    await pool.execute(
        "INSERT INTO rollouts (id, tenant, artifact_id, waves, effective_policy)"
        " VALUES ($1, $2, $3, 2, $4::text::jsonb)",
        fleet.rollout,
        first.tenant,
        artifact,
        TELL_OFFLINE.model_dump_json(),
    )
    for wave, device in ((1, fleet.first), (2, fleet.second)):
        await pool.execute(
            "INSERT INTO rollout_targets (rollout_id, tenant, device_id, wave)"
            " VALUES ($1, $2, $3, $4)",
            fleet.rollout,
            device.tenant,
            device.id,
            wave,
        )
    if m is not None:
        await _start(pool, fleet, m)
    return fleet


async def _start(pool: asyncpg.Pool[Any], fleet: _Fleet, m: _Metrics) -> None:
    """Start the draft as the scheduler does (running at wave 1, attempt 1) and
    wait for the cache to drop wave 1's device."""
    before = m.wave_drops
    await pool.execute(
        "UPDATE rollouts SET status = 'running', current_wave = 1, attempt = 1"
        " WHERE id = $1",
        fleet.rollout,
    )

    async def dropped() -> bool:
        return m.wave_drops > before

    await until(dropped)


class _Pool:
    """The real pool, with the wave read failing when ``fail`` is set."""

    def __init__(self, real: asyncpg.Pool[Any]) -> None:
        self.real = real
        self.fail = False

    async def fetchrow(self, *args: Any, **kwargs: Any) -> Any:
        return await self.real.fetchrow(*args, **kwargs)

    async def fetch(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail:
            raise asyncpg.exceptions.ConnectionDoesNotExistError("cut")
        return await self.real.fetch(*args, **kwargs)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def cache(
    db_url: str, pool: asyncpg.Pool[Any], registry: CollectorRegistry
) -> AsyncIterator[DesiredCache]:
    cache = DesiredCache(
        _Pool(pool),  # type: ignore[arg-type]
        db_url=db_url,
        max_entries=100,
        ttl=600,
        db_timeout=5,
        registry=registry,
    )
    await cache.start()
    assert cache.live
    yield cache
    await cache.close()


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    @property
    def hits(self) -> float:
        return self.value("xdp47_ingest_identity_cache_lookups_total", result="hit")

    @property
    def misses(self) -> float:
        return self.value("xdp47_ingest_identity_cache_lookups_total", result="miss")

    @property
    def tenant_drops(self) -> float:
        return self.value("xdp47_ingest_identity_cache_invalidations_total")

    async def tenant_dropped_since(self, before: float) -> None:
        """Wait for a tenant-wide drop after ``before`` drops."""

        async def dropped() -> bool:
            return self.tenant_drops > before

        await until(dropped)

    @property
    def wave_drops(self) -> float:
        return self.value("xdp47_ingest_identity_cache_wave_drops_total")


async def _all_kept(cache: DesiredCache, fleet: _Fleet) -> None:
    """Read every device until each answer is kept (a read that overlaps a
    notification is not)."""

    async def kept() -> bool:
        for device in fleet.devices:
            await cache.lookup(device.credential)
        return len(cache._entries) == 3

    await until(kept)


async def _actions(cache: DesiredCache, fleet: _Fleet) -> list[str]:
    views = [await cache.lookup(d.credential) for d in fleet.devices]
    return [v.action if v is not None else "unknown" for v in views]


async def test_a_wave_start_drops_only_the_new_wave_s_devices(
    cache: DesiredCache, pool: asyncpg.Pool[Any], registry: CollectorRegistry
) -> None:
    m = _Metrics(registry)
    fleet = await _fleet(pool, m)
    await _all_kept(cache, fleet)
    assert await _actions(cache, fleet) == ["update", "none", "none"]
    tenant_drops, wave_drops = m.tenant_drops, m.wave_drops
    await pool.execute(
        "UPDATE rollouts SET current_wave = 2 WHERE id = $1", fleet.rollout
    )

    async def dropped() -> bool:
        return m.wave_drops > wave_drops

    await until(dropped)
    assert len(cache._entries) == 2  # the second device's entry went
    hits = m.hits
    assert await _actions(cache, fleet) == ["update", "update", "none"]
    # The first device and the bystander were answered from memory; the
    # second was read (and is kept again).
    after = m.hits
    assert after - hits == 2
    assert len(cache._entries) == 3
    assert m.tenant_drops == tenant_drops

    # Any other change still drops the whole tenant: an abort tells nobody.
    await pool.execute(
        "UPDATE rollouts SET status = 'aborted' WHERE id = $1", fleet.rollout
    )
    await m.tenant_dropped_since(tenant_drops)
    assert await _actions(cache, fleet) == ["none", "none", "none"]


async def test_a_start_drops_only_its_first_wave_s_devices(
    cache: DesiredCache, pool: asyncpg.Pool[Any], registry: CollectorRegistry
) -> None:
    """A draft told nobody: its start changes the answer of wave 1 only."""
    m = _Metrics(registry)
    fleet = await _fleet(pool)
    await _all_kept(cache, fleet)
    assert await _actions(cache, fleet) == ["none", "none", "none"]
    tenant_drops = m.tenant_drops
    await _start(pool, fleet, m)
    assert len(cache._entries) == 2  # the first device's entry went
    hits = m.hits
    assert await _actions(cache, fleet) == ["update", "none", "none"]
    assert m.hits - hits == 2
    assert m.tenant_drops == tenant_drops


async def test_a_failed_wave_read_drops_the_whole_tenant(
    cache: DesiredCache, pool: asyncpg.Pool[Any], registry: CollectorRegistry
) -> None:
    m = _Metrics(registry)
    fleet = await _fleet(pool, m)
    await _all_kept(cache, fleet)
    tenant_drops = m.tenant_drops
    cache._pool.fail = True  # type: ignore[attr-defined]
    await pool.execute(
        "UPDATE rollouts SET current_wave = 2 WHERE id = $1", fleet.rollout
    )
    await m.tenant_dropped_since(tenant_drops)
    misses = m.misses
    assert await _actions(cache, fleet) == ["update", "update", "none"]
    after = m.misses
    assert after - misses == 3  # every device of the tenant was read again


async def test_a_device_is_not_answered_from_memory_while_its_wave_is_read(
    cache: DesiredCache, pool: asyncpg.Pool[Any], registry: CollectorRegistry
) -> None:
    """Between the notification and the end of the read of the wave's
    credentials, the tenant's answers come from the database."""
    m = _Metrics(registry)
    fleet = await _fleet(pool, m)
    await _all_kept(cache, fleet)
    cache._on_notify(
        None, 0, "xdp47_desired", f"{fleet.first.tenant} {uuid.uuid4()} 1 2"
    )
    # The read of that (unknown) rollout's wave 2 is under way: a lookup now is
    # a read, not a hit.
    hits = m.hits
    await cache.lookup(fleet.bystander.credential)
    assert m.hits == hits
    await until(lambda: _no_refresh(cache))
    await cache.lookup(fleet.bystander.credential)
    assert m.hits == hits + 1


async def _no_refresh(cache: DesiredCache) -> bool:
    return not cache._refreshing


async def test_a_late_joiner_of_the_running_wave_drops_only_its_own_entry(
    cache: DesiredCache, pool: asyncpg.Pool[Any], registry: CollectorRegistry
) -> None:
    """The scheduler's late join names the rollout, the running wave and
    ``late`` (``xdp47_scheduler.pg.late``): only that wave's late targets are
    dropped, so the joiner is told at its next request and the rest of the
    tenant stays answered from memory."""
    m = _Metrics(registry)
    fleet = await _fleet(pool, m)
    await _all_kept(cache, fleet)
    assert await _actions(cache, fleet) == ["update", "none", "none"]
    tenant_drops, wave_drops = m.tenant_drops, m.wave_drops
    joiner = fleet.bystander
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO rollout_targets (rollout_id, tenant, device_id, wave, late)"
            " VALUES ($1, $2, $3, 1, true)",
            fleet.rollout,
            joiner.tenant,
            joiner.id,
        )
        await conn.execute(
            "SELECT pg_notify('xdp47_desired', $1)",
            f"{joiner.tenant} {fleet.rollout} 0 1 late",
        )

    async def dropped() -> bool:
        return m.wave_drops > wave_drops

    await until(dropped)
    assert hash_secret(joiner.credential) not in cache._entries
    assert len(cache._entries) == 2
    hits = m.hits
    assert await _actions(cache, fleet) == ["update", "none", "update"]
    assert m.hits - hits == 2  # the first device (not late) and the second
    assert m.tenant_drops == tenant_drops
