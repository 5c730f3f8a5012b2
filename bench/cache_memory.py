"""Bytes per cached device in ingest's identity cache (``DesiredCache``).

Fills a live cache with N synthetic devices through its real miss path
(``lookup_hash`` → ``read_device`` → the cache's insertion) over a fake pool
whose rows look like ``READ_DEVICE``'s, and reports what the entries cost:
``tracemalloc`` (bytes Python allocated while filling, the device rows excluded)
and the process's RSS growth. Half the fleet is in a running rollout (a
desired artifact with a signature and a compatibility map), half has nothing
desired, across ``--tenants`` tenants; device ids are 20 characters.

    uv run python bench/cache_memory.py --devices 1000000
    {"bench": "cache_memory", "devices": 1000000, "bytes_per_device": ...}

Also prints ``lookup_us``: the mean time of a hit, so a smaller entry is not
bought with a slower heartbeat.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import sys
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

from xdp47_ingest.cache import DesiredCache

_ARTIFACT = uuid.UUID("6a1c3e0e-8c55-4d7e-9c1b-1f7d2a9e0b11")
_ROLLOUT = uuid.UUID("0b9f6f0e-55d4-4bde-8a3c-9d8b6a0c7e21")


def _row(tenant: str, device_id: str, desired: bool) -> dict[str, Any]:
    """A ``READ_DEVICE`` row as asyncpg gives it (fresh strings per row)."""
    row: dict[str, Any] = dict.fromkeys(
        (
            "current_artifact_id",
            "desired_artifact_id",
            "desired_rollout_id",
            "desired_attempt",
            "desired_rollback",
            "device_attempt",
            "retry_after",
            "version",
            "uri",
            "sha256",
            "size",
            "signature",
            "content_stored",
            "compatible",
            "window_opens_at",
        )
    )
    row["tenant"] = tenant
    row["id"] = device_id
    if desired:
        row |= {
            "desired_artifact_id": _ARTIFACT,
            "desired_rollout_id": _ROLLOUT,
            "desired_attempt": 1,
            "desired_rollback": False,
            "device_attempt": 1,
            "version": "2.4.1",
            "uri": f"https://updates.example.com/api/artifacts/{_ARTIFACT}/content",
            "sha256": hashlib.sha256(b"artifact").hexdigest(),
            "size": 52_428_800,
            "signature": "ed25519:" + "A" * 86 + "==",
            "content_stored": False,
            "compatible": '{"hw": ["rpi4", "x86"]}',
        }
    return row


def _key(i: int) -> bytes:
    """Device ``i``'s credential hash, a new object each time (as a request's)."""
    return hashlib.sha256(f"dev_{i}".encode()).digest()


class _Pool:
    """Answers ``fetchrow`` with a fresh row per read (nothing of it outlives
    the read but what the cache keeps), for ``tenants`` tenants."""

    def __init__(self, devices: int, tenants: int) -> None:
        self.index = {_key(i): i for i in range(devices)}
        self.tenants = tenants

    async def fetchrow(self, _sql: str, key: bytes, **_: Any) -> dict[str, Any] | None:
        i = self.index.get(key)
        if i is None:
            return None
        return _row(f"tenant-{i % self.tenants:04d}", f"device-{i:013d}", i % 2 == 0)


def _cache(pool: _Pool, size: int) -> DesiredCache:
    cache = DesiredCache(
        pool,  # type: ignore[arg-type]  # the fake answers fetchrow only
        db_url="postgresql://unused",
        max_entries=size,
        ttl=3600,
        db_timeout=1,
    )
    cache._set_live(True)  # what the listener does once LISTEN is up
    return cache


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def measure(devices: int, tenants: int = 10) -> dict[str, Any]:
    """Fill a cache with ``devices`` entries; what each one costs."""
    pool = _Pool(devices, tenants)
    cache = _cache(pool, devices)
    gc.collect()
    rss0 = _rss()
    for i in range(devices):
        await cache.lookup_hash(_key(i))
    gc.collect()
    rss1 = _rss()
    n = min(devices, 200_000)
    keys = [_key(i) for i in range(n)]
    started = time.perf_counter()
    for key in keys:
        await cache.lookup_hash(key)
    lookup_us = (time.perf_counter() - started) / n * 1e6
    hits = cache._hit._value.get()
    gc_started = time.perf_counter()
    gc.collect()
    gc_ms = (time.perf_counter() - gc_started) * 1e3
    # tracemalloc's own bookkeeping inflates RSS: a second cache, traced.
    traced_n = min(devices, 100_000)
    second = _cache(pool, traced_n)
    tracemalloc.start()
    for i in range(traced_n):
        await second.lookup_hash(_key(i))
    traced, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "bench": "cache_memory",
        "devices": devices,
        "bytes_per_device": round(traced / traced_n),
        "rss_bytes_per_device": round((rss1 - rss0) / devices),
        "rss_mib": round(rss1 / 2**20, 1),
        "mib_per_million_devices": round((rss1 - rss0) / devices * 1e6 / 2**20),
        "lookup_us": round(lookup_us, 3),
        "hits": int(hits),
        "ok": int(hits) == n,
        "full_gc_ms": round(gc_ms, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=10)
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.devices, args.tenants))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
