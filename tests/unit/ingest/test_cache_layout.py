"""The identity cache's compact layout: devices told the same thing share one
``Desired``, a hit answers exactly what the read did, a full cache drops its
oldest reads, an expired entry is read again, desired states no entry uses are
forgotten, the entries are nothing the cyclic GC walks, and an entry costs a
few hundred bytes (``bench/cache_memory.py`` measures a million)."""

from __future__ import annotations

import gc
import hashlib
import importlib
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from xdp47_ingest.cache import DesiredCache
from xdp47_ingest.desired import DeviceView, etag_of

BENCH = Path(__file__).resolve().parents[3] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
cache_memory = importlib.import_module("cache_memory")

ARTIFACT = uuid.uuid4()


class _Pool:
    """``fetchrow`` over rows by credential hash; counts reads."""

    def __init__(self) -> None:
        self.rows: dict[bytes, dict[str, Any]] = {}
        self.reads = 0

    def add(self, i: int, *, desired: bool = True) -> bytes:
        key = hashlib.sha256(f"c{i}".encode()).digest()
        self.rows[key] = cache_memory._row("t1", f"dev-{i}", desired)
        return key

    async def fetchrow(self, _sql: str, key: bytes, **_: Any) -> Any:
        self.reads += 1
        return self.rows.get(key)


def _cache(pool: _Pool, size: int = 100, ttl: float = 600) -> DesiredCache:
    cache = DesiredCache(
        pool,  # type: ignore[arg-type]
        db_url="postgresql://unused",
        max_entries=size,
        ttl=ttl,
        db_timeout=1,
    )
    cache._set_live(True)  # as the listener does once LISTEN is up
    return cache


async def test_devices_told_the_same_share_one_desired_state() -> None:
    pool = _Pool()
    keys = [pool.add(i) for i in range(10)]
    cache = _cache(pool)
    views = [await cache.lookup_hash(k) for k in keys]
    assert all(v is not None for v in views)
    assert len({id(v.desired) for v in views if v is not None}) == 1
    assert [v.device_id for v in views if v is not None] == [
        f"dev-{i}" for i in range(10)
    ]


async def test_a_hit_answers_what_the_read_answered() -> None:
    pool = _Pool()
    key = pool.add(1)
    cache = _cache(pool)
    read = await cache.lookup_hash(key)
    hit = await cache.lookup_hash(key)
    assert pool.reads == 1
    assert read is not None
    assert hit is not None
    assert (hit.tenant, hit.device_id, hit.action) == ("t1", "dev-1", "update")
    assert hit.payload == read.payload
    assert hit.payload.endswith(b'"device_id":"dev-1"}')
    assert hit.etag == read.etag == etag_of(read.payload)
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert hit.answer_json(None, now) == read.answer_json(None, now)


async def test_a_full_cache_drops_its_oldest_reads() -> None:
    pool = _Pool()
    keys = [pool.add(i) for i in range(200)]
    cache = _cache(pool, size=128)
    for k in keys[:128]:
        await cache.lookup_hash(k)
    await cache.lookup_hash(keys[128])
    # the oldest 1/64th (2 entries) went to make room
    assert len(cache._entries) == 127
    assert keys[0] not in cache._entries
    assert keys[1] not in cache._entries
    assert keys[2] in cache._entries
    for k in keys:
        await cache.lookup_hash(k)
    assert len(cache._entries) <= 128


async def test_an_expired_entry_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = _Pool()
    key = pool.add(1)
    cache = _cache(pool, ttl=10)
    clock = [1000.0]
    monkeypatch.setattr("xdp47_ingest.cache.time.monotonic", lambda: clock[0])
    await cache.lookup_hash(key)
    clock[0] += 9.5
    await cache.lookup_hash(key)
    assert pool.reads == 1
    clock[0] += 1
    await cache.lookup_hash(key)
    assert pool.reads == 2


async def test_desired_states_no_entry_uses_are_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every release a device was told is interned while an entry uses it; the
    table is pruned, so a long-lived replica does not keep them all."""
    monkeypatch.setattr("xdp47_ingest.cache._PRUNE_FLOOR", 4)
    pool = _Pool()
    key = pool.add(1)
    other = pool.add(2)
    cache = _cache(pool)
    kept = await cache.lookup_hash(other)  # release 2.4.1, used throughout
    assert kept is not None
    for n in range(20):
        pool.rows[key]["version"] = f"3.0.{n}"
        cache._invalidate("t1")  # what a NOTIFY for the tenant does
        view = await cache.lookup_hash(key)
        assert view is not None
        assert f'"version":"3.0.{n}"'.encode() in view.payload
    assert len(cache._desired) <= 4
    assert len(cache._numbers) == len(cache._desired)
    hit = await cache.lookup_hash(key)
    assert hit is not None
    assert b'"version":"3.0.19"' in hit.payload
    cache._invalidate("t1")
    again = await cache.lookup_hash(other)
    assert again is not None
    assert again.payload == kept.payload


async def test_the_entries_are_nothing_the_cyclic_gc_walks() -> None:
    """A million tracked entries made every full collection walk a million
    objects; the cache's entries and their dict are not tracked at all."""
    pool = _Pool()
    keys = [pool.add(i) for i in range(5_000)]
    cache = _cache(pool, size=10_000)
    await cache.lookup_hash(keys[0])
    gc.collect()
    before = len(gc.get_objects())
    for k in keys:
        await cache.lookup_hash(k)
    gc.collect()
    assert len(cache._entries) == 5_000
    assert not gc.is_tracked(cache._entries)
    assert len(gc.get_objects()) - before < 100


def test_a_view_is_built_from_any_desired_state_with_its_device_id() -> None:
    from xdp47_common.messages import DesiredState

    view = DeviceView.of("t", 'a"b', DesiredState(action="none", device_id='a"b'))
    assert view.payload.endswith(b'"device_id":"a\\"b"}')
    with pytest.raises(ValueError, match="does not end with it"):
        DeviceView.of("t", "x", DesiredState(action="none", device_id="y"))


async def test_an_entry_costs_a_few_hundred_bytes() -> None:
    """~1.1 KB per device with a TTLCache of full views; the layout keeps it
    well under 400 (the figure is printed for the record)."""
    line = await cache_memory.measure(20_000)
    sys.stdout.write(f"{line}\n")
    assert line["hits"] == 20_000
    assert line["bytes_per_device"] < 400
